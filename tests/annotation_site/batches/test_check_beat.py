"""check_beat, the beat service's health check: healthy while the schedule's tasks keep running."""
from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

pytestmark = pytest.mark.django_db


def check_beat(*args) -> str:
    out = io.StringIO()
    call_command("check_beat", *args, stdout=out)
    return out.getvalue().strip()


def test_a_schedule_that_never_ran_is_unhealthy():
    PeriodicTask.objects.update(last_run_at=None)
    with pytest.raises(CommandError, match="has not run any enabled periodic task yet"):
        check_beat()


def test_a_recent_run_of_any_enabled_task_is_healthy():
    PeriodicTask.objects.update(last_run_at=None)
    PeriodicTask.objects.filter(enabled=True).update(last_run_at=timezone.now() - dt.timedelta(seconds=100))
    assert check_beat("--max-age-s", "600") == "beat ran 100 s ago"


def test_an_old_last_run_means_beat_stopped_and_says_so():
    PeriodicTask.objects.update(last_run_at=timezone.now() - dt.timedelta(hours=2))
    with pytest.raises(CommandError, match=r"beat's last run was 2:00:0\d ago .* more than 600 s"):
        check_beat()


def test_a_disabled_task_does_not_count():
    PeriodicTask.objects.update(last_run_at=None)
    task = PeriodicTask.objects.first()
    PeriodicTask.objects.filter(pk=task.pk).update(enabled=False, last_run_at=timezone.now())
    with pytest.raises(CommandError, match="has not run"):
        check_beat()
