"""Thin rasa_sdk actions: read the tracker, call crm_adapter, speak.

rasa_sdk imports every submodule of this package, so each action only needs
to live in one of them.
"""
from bot.memtrace import install_from_env
from crm_adapter.masking import install_pii_filter

# The action server has configured its log handlers by the time it imports
# this package: mask phones and emails in everything they write.
install_pii_filter()
# Off unless KEFU_MEMTRACE names a folder (diagnosing memory growth in a soak).
install_from_env("actions")
