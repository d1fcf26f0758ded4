# memlab image for the API and workers. TORCH_SPEC picks the PyTorch build:
#   CPU (default):  torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
#   GPU workers:    build with --build-arg TORCH_SPEC="torch==2.13.0" (CUDA wheels from PyPI)
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 MEMLAB_DATA_DIR=/data

WORKDIR /app
RUN pip install ${TORCH_SPEC}
COPY pyproject.toml README.md alembic.ini ./
COPY api api
COPY core core
COPY store store
COPY worker worker
COPY client client
COPY clients/python clients/python
COPY migrations migrations
RUN pip install -e ./clients/python -e .

EXPOSE 8000
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
