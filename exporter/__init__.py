"""Prometheus exporter for the Observatory Control System (OCS)."""

__version__ = "0.1.0"
