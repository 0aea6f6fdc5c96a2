"""Benchmark commands: each prints a table and writes it under benchmarks/ (`python -m ui3d.benchmarks.<name>`)."""
