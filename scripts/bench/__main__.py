"""`python -m scripts.bench`: the end-to-end throughput and latency benchmark."""

from scripts.bench.throughput import main

main()
