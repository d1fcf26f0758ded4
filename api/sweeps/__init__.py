"""The sweeps domain: submit a study (base × axes × seeds), follow it, cancel it."""
