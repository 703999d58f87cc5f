"""The Celery application: `celery -A annotation_site worker` / `celery -A annotation_site beat`."""
import os

from celery import Celery
from celery.signals import celeryd_after_setup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_site.settings")

app = Celery("annotation_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Serving workers consume this queue: launches of vLLM servers for deployments.
SERVING_QUEUE = "serving"


def serving_worker_queue(nodename: str) -> str:
    """The queue only the serving worker `nodename` consumes: stops of the servers it launched."""
    return f"{SERVING_QUEUE}.{nodename}"


@celeryd_after_setup.connect
def _consume_own_serving_queue(sender, instance, **kwargs):
    """A worker of the "serving" queue also consumes its own queue (Celery's documented direct
    queue recipe), so a stop reaches the worker whose machine runs the server."""
    if SERVING_QUEUE in (instance.app.amqp.queues.consume_from or {}):
        instance.app.amqp.queues.select_add(serving_worker_queue(sender))
