"""Benchmarks: throughput, latency, memory and scaling (results in docs/benchmarks.md)."""
