from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "annotation_site.generation"
    label = "generation"

    def ready(self):
        from annotation_site.annotation.signals import items_need_samples
        from annotation_site.generation.tasks import enqueue_fill_for_items

        items_need_samples.connect(enqueue_fill_for_items, dispatch_uid="generation.enqueue_fill_for_items")
