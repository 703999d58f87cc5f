from django.apps import AppConfig


class LoopConfig(AppConfig):
    name = "annotation_site.loop"
    label = "loop"
    verbose_name = "Weekly loop"

    def ready(self) -> None:
        from annotation_site.loop import receivers  # noqa: F401 - connects the runs app's signal
