"""Command-line tools: local services, replay of the night, benchmarks."""
