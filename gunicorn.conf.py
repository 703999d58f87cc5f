"""How gunicorn serves the site: read from the working directory by `gunicorn annotation_site.wsgi`
(docker-compose, the Dockerfile) and by bench/annotate_load.py, so the benchmark measures the
production settings.

Threads (gthread), because an annotation request spends part of its time waiting on PostgreSQL and
annotators' browsers keep their connection alive between items; with the default sync workers
each request would hold a whole process while it waits and open a new connection.
"""
import multiprocessing

from annotation_site.env import env_int, env_str

bind = env_str("WEB_BIND", "0.0.0.0:8000")
# Processes: one per core by default (gunicorn's own WEB_CONCURRENCY variable).
workers = env_int("WEB_CONCURRENCY", multiprocessing.cpu_count(), minimum=1)
worker_class = "gthread"
threads = env_int("WEB_THREADS", 8, minimum=1)
keepalive = 30
backlog = 2048
# Exports and training launches run in Celery, never in a request: 2 minutes is generous.
timeout = 120
