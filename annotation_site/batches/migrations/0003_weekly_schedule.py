"""Creates the weekly close-and-export schedule (Monday 00:00 UTC) and the export watchdog.

Both live in django-celery-beat's tables, so admins edit them under "Periodic tasks" in the admin;
the migration only creates them when missing and never overwrites an admin's edit.
"""
from django.db import migrations

WEEKLY_TASK_NAME = "Close and export the weekly batch"
WATCHDOG_TASK_NAME = "Resume batch exports that never started or lost their worker"


def create_schedules(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    monday_midnight, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="0", day_of_week="1", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name=WEEKLY_TASK_NAME,
        defaults={
            "task": "annotation_site.batches.tasks.batch_close_weekly",
            "crontab": monday_midnight,
            "description": "Closes the ISO week that just ended into one batch and exports it.",
        },
    )
    every_five_minutes, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=WATCHDOG_TASK_NAME,
        defaults={
            "task": "annotation_site.batches.tasks.batch_exports_resume",
            "interval": every_five_minutes,
            "description": "Re-enqueues exports whose enqueue failed (broker down) or whose worker died.",
        },
    )


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[WEEKLY_TASK_NAME, WATCHDOG_TASK_NAME]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0002_export_bookkeeping"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
