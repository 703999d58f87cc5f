"""Creates the beat schedules of quality control: reward-model scoring of new comparisons (on the
training worker) and the review queue's flags. Admins edit them under "Periodic tasks"; the
migration only creates them when missing."""
from django.conf import settings
from django.db import migrations

SCORE_TASK_NAME = "Score new comparisons with the reward models"
FLAGS_TASK_NAME = "Flag comparisons for review"


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds, description in (
        (SCORE_TASK_NAME, "annotation_site.quality.tasks.reward_model_agreement_update", settings.QUALITY_RM_SCORE_INTERVAL_S,
         "Scores both responses of new comparisons with each guideline's reward model, for agreement with annotators."),
        (FLAGS_TASK_NAME, "annotation_site.quality.tasks.flags_sync", settings.QUALITY_FLAGS_INTERVAL_S,
         "Puts comparisons that failed gold, disagree with others or the reward model, or were too fast into review."),
    ):  # fmt: skip
        every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": every, "description": description, "expire_seconds": seconds}
        )


def remove_schedules(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[SCORE_TASK_NAME, FLAGS_TASK_NAME]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("quality", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
