"""Health check of Celery beat (compose's `beat` service): did its schedule run lately?

    python manage.py check_beat [--max-age-s 600]

Beat (django-celery-beat's DatabaseScheduler) records each periodic task's last run in the
database; with the queue filling every GENERATION_FILL_INTERVAL_S and the watchdogs every few
minutes, the newest `last_run_at` of the enabled tasks is never older than a few minutes while
beat runs. The scheduler writes them back every 3 minutes, so the default allows for that.
Exits 0 when the newest run is recent enough, else 1 with what it found.
"""
from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max
from django.utils import timezone
from django_celery_beat.models import PeriodicTask


class Command(BaseCommand):
    help = "Exit 0 when Celery beat ran an enabled periodic task within --max-age-s seconds."

    def add_arguments(self, parser):
        parser.add_argument("--max-age-s", type=int, default=600, help="oldest acceptable last run (default 600)")

    def handle(self, *args, max_age_s: int, **options):
        newest = PeriodicTask.objects.filter(enabled=True).aggregate(newest=Max("last_run_at"))["newest"]
        if newest is None:
            raise CommandError("beat has not run any enabled periodic task yet (no last_run_at recorded)")
        age = (timezone.now() - newest).total_seconds()
        if age > max_age_s:
            raise CommandError(
                f"beat's last run was {dt.timedelta(seconds=int(age))} ago ({newest:%Y-%m-%d %H:%M:%S} UTC), "
                f"more than {max_age_s} s: is the beat process running?"
            )
        self.stdout.write(f"beat ran {int(age)} s ago")
