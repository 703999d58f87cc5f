from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "annotation_site.generation"
    label = "generation"
