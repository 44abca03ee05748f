"""Benchmarks: scripts that print JSON figures (never run as tests, never gate CI on a time)."""
