"""OpenTelemetry tracing of act() runs (planned: see the README roadmap)."""
