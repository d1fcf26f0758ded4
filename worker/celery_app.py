"""The worker's Celery app, built from MEMLAB_* settings (`celery -A worker.celery_app:app`).

Importing worker.registry connects the node's registration to Celery's signals.
"""

from store.settings import Settings
from worker import registry  # noqa: F401  (connects the signal handlers)
from worker.celery_config import create_celery

app = create_celery(Settings())
