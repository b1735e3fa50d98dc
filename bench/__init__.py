"""Benchmarks (make bench): slow, so never part of make test."""
