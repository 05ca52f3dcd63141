"""Helpers shared by the tests: fakes for unit tests, and what talks to the real processes."""
