"""The /metrics text: the agent series, rendered and compressed, and the exporter's own."""
