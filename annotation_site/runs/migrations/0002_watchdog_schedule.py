"""Creates the beat schedule of the runs watchdog (restart or fail runs whose worker died, enqueue
runs whose enqueue failed). It lives in django-celery-beat's tables, editable under "Periodic
tasks" in the admin; the migration creates it only when missing. It is sent to the default
"celery" queue: the training worker may be busy with one run for hours."""
from django.conf import settings
from django.db import migrations

WATCHDOG_TASK_NAME = "Recover training runs whose worker died"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=settings.RUN_WATCHDOG_INTERVAL_S, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=WATCHDOG_TASK_NAME,
        defaults={
            "task": "annotation_site.runs.watchdog.runs_recover",
            "interval": every,
            "queue": "celery",
            "description": "Restarts (or, after RUN_MAX_ATTEMPTS, fails) runs without a heartbeat; enqueues runs never sent.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=WATCHDOG_TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
