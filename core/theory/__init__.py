"""Closed forms and reference computations that theory-checking kinds show beside their
measurements: one theory per module, pure functions of the spec's numbers."""
