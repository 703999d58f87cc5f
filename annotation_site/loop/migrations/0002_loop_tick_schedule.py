"""Creates beat's loop tick (start iterations a batch's export triggers, advance running ones, poll
canaries for votes), in django-celery-beat's tables, editable under "Periodic tasks"; only when missing."""
from django.conf import settings
from django.db import migrations

TICK_TASK_NAME = "Advance the weekly loop"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=settings.LOOP_TICK_INTERVAL_S, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=TICK_TASK_NAME,
        defaults={
            "task": "annotation_site.loop.tasks.loops_tick",
            "interval": every,
            "queue": "celery",
            "description": "Starts iterations when a weekly batch's export finishes; advances running iterations.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TICK_TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("loop", "0001_loop_definitions_and_iterations"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
