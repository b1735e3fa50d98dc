"""Kefu's runtime around Rasa: channels, tracker store, process supervisor, CLI."""
