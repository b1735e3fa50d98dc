"""Fake external services on 127.0.0.1 (real HTTP) for tests and benchmarks:
remote CRMs (Zoho, REST) and the WeChat API, which tests can misconfigure on purpose."""
