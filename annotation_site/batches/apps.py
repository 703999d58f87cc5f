from django.apps import AppConfig


class BatchesConfig(AppConfig):
    name = "annotation_site.batches"
    label = "batches"
