"""Benchmarks: ratios measured in one run, printed; never run as tests."""
