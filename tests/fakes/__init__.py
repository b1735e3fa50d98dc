"""Fake remote CRMs: real HTTP servers on 127.0.0.1 that tests can misconfigure on purpose."""
