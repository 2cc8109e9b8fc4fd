"""Benchmarks (``twin bench``): measured figures, never timed assertions in tests."""
