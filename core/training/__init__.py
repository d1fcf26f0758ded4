"""The training loop, its learning-rate schedule, devices and resumable checkpoints."""
