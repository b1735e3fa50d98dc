"""Kefu's own dialogue policies (Rasa ``Policy`` subclasses), listed in config.yml."""
