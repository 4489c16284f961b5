"""OpenTelemetry for act() runs: GenAI spans and metrics, exporter setup, a JSONL span exporter."""
