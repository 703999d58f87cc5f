from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotation_site.evaluation"
    verbose_name = "Evaluation: leaderboard and checkpoint lineage"
