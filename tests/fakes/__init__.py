"""Fake external services on 127.0.0.1 (real HTTP) for tests and benchmarks."""
