"""Creates the beat schedules that keep the annotation queue filled and re-check deployments.

Both live in django-celery-beat's tables, so admins edit them under "Periodic tasks" in the admin;
the intervals start from GENERATION_FILL_INTERVAL_S and DEPLOYMENT_HEALTH_INTERVAL_S, and the
migration only creates the tasks when missing, never overwriting an admin's edit.
"""
from django.conf import settings
from django.db import migrations

FILL_TASK_NAME = "Fill the annotation queue with generated pairs"
HEALTH_TASK_NAME = "Re-check the health of deployments"


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds, description in (
        (
            FILL_TASK_NAME,
            "annotation_site.generation.tasks.fill_queue",
            settings.GENERATION_FILL_INTERVAL_S,
            "Generates the two samples of waiting prompts until each guideline has its target of ready items.",
        ),
        (
            HEALTH_TASK_NAME,
            "annotation_site.generation.tasks.check_deployments_health",
            settings.DEPLOYMENT_HEALTH_INTERVAL_S,
            "Asks each enabled deployment whether it serves; unhealthy ones come back once they answer.",
        ),
    ):
        every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(
            name=name,
            # A run still queued when the next one is due is dropped: a slow worker never piles them up.
            defaults={"task": task, "interval": every, "description": description, "expire_seconds": seconds},
        )


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[FILL_TASK_NAME, HEALTH_TASK_NAME]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0002_checkpoint_config_claims_launched_servers"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
