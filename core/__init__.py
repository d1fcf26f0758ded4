"""memlab's engine: specs, registries, data generators, models, trainer and experiment kinds.

Pure PyTorch/NumPy/pydantic: nothing here imports web, queue or database code, so the
same engine runs inside a Celery worker, a notebook or a benchmark.
"""
