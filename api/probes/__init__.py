"""Probes: measure what a finished experiment memorized."""
