"""Throughput methodology and the published tables (see benchmarks/README.md)."""
