"""Creates the beat schedule that decides running canaries (admins edit it under "Periodic tasks";
the interval starts from CANARY_DECIDE_INTERVAL_S; an admin's edit is never overwritten)."""
from django.conf import settings
from django.db import migrations

DECIDE_TASK_NAME = "Promote or roll back canary deployments"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    seconds = settings.CANARY_DECIDE_INTERVAL_S
    every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=DECIDE_TASK_NAME,
        defaults={
            "task": "annotation_site.generation.tasks.decide_canaries", "interval": every, "expire_seconds": seconds,
            "description": "Counts the annotators' votes between each running canary and its baseline; at the "
                           "canary's minimum votes, promotes it or rolls it back with the reason.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=DECIDE_TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0005_deployment_canary"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
