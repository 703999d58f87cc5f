from rest_framework import serializers

from annotation_site.batches.models import Batch


class BatchOutput(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = [
            "id",
            "week",
            "state",
            "closed_at",
            "closed_early",
            "cutoff",
            "counts",
            "export_progress",
            "export_error",
            "export_attempts",
            "export_path",
            "exported_at",
            "download_url",
        ]

    def get_download_url(self, batch: Batch) -> str | None:
        from django.urls import reverse

        return reverse("batches:download", args=[batch.id]) if batch.state == "exported" else None


class BatchCloseInput(serializers.Serializer):
    week = serializers.RegexField(
        r"^\d{4}-W\d{2}$",
        required=False,
        allow_blank=True,
        help_text="ISO week to close, e.g. 2026-W48; empty closes the current week now.",
        error_messages={"invalid": "Write the week like 2026-W48."},
    )
