"""Benchmark harness: the exporter, OCS's RegistryAgent and a bare autobahn subscriber,
side by side on one crossbar router under a simulated OCS heartbeat load.

Run ``python -m benchmarks.run --help``; see ``benchmarks/README.md``.
"""
