"""The worker's Celery app, built from MEMLAB_* settings (`celery -A worker.celery_app:app`)."""

from store.settings import Settings
from worker.celery_config import create_celery

app = create_celery(Settings())
