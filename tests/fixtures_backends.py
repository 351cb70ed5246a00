"""Fixtures for real backends (owned by the backends work)."""
