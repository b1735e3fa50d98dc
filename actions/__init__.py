"""Thin rasa_sdk actions: read the tracker, call crm_adapter, speak.

rasa_sdk imports every submodule of this package, so each action only needs
to live in one of them.
"""
