from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "annotation_site.runs"
    label = "runs"
    verbose_name = "Training runs"
