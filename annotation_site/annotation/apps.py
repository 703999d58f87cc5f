from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation_site.annotation"
    label = "annotation"
