"""What experiments and probes share in the API, written once and parametrised by run type."""
