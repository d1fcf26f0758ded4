"""Probes: what a trained model memorized. One module per probe kind, plus the shared
pieces (`registry`, `target`, `sequences`, `scoring`); `registry.all_probes()` imports
every module here, so adding a probe kind is one new file."""
