"""Pure rules of the night: validation, tallies, alerts, reference; no Kafka, Redis or settings."""
