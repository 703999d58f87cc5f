"""Admin pages for checkpoints, deployments and generation claims (admins and researchers)."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from annotation_site.errors import ApplicationError
from annotation_site.generation import services
from annotation_site.generation.models import Checkpoint, ClaimState, Deployment, Engine, GenerationClaim
from annotation_site.generation.paths import checkpoint_path


class CheckpointAdminForm(forms.ModelForm):
    class Meta:
        model = Checkpoint
        fields = "__all__"

    def clean_path(self) -> str:
        try:
            return checkpoint_path(self.cleaned_data["path"])
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None


class DeploymentAdminForm(forms.ModelForm):
    class Meta:
        model = Deployment
        fields = "__all__"

    def clean(self):
        data = super().clean()
        if data.get("engine") == Engine.VLLM and data.get("endpoint_url"):
            try:
                data["endpoint_url"] = services.endpoint_url_check(data["endpoint_url"])
            except ApplicationError as error:
                self.add_error("endpoint_url", error.message)
        return data


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    form = CheckpointAdminForm
    list_display = ("name", "kind", "parent", "path", "created_at")
    list_filter = ("kind",)
    search_fields = ("name", "path", "run", "notes")
    raw_id_fields = ("parent",)
    readonly_fields = ("training_config", "created_at")


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    form = DeploymentAdminForm
    list_display = ("checkpoint", "engine", "endpoint_url", "enabled", "health", "consecutive_failures", "last_checked_at",
                    "canary_state")
    list_filter = ("engine", "enabled", "health", "canary_state")
    search_fields = ("checkpoint__name", "endpoint_url", "served_model_name")
    raw_id_fields = ("checkpoint",)
    # A canary is started, promoted and rolled back by generation/canary.py (audited), never edited here.
    readonly_fields = (
        "health", "consecutive_failures", "last_error", "last_checked_at", "tensor_parallel_size", "server_status",
        "server_host", "server_queue", "server_pid", "server_started_at", "server_marker", "server_gpus", "server_log",
        "canary_of", "canary_share", "canary_min_votes", "canary_min_win_rate", "canary_state", "canary_reason",
        "canary_tally", "canary_decided_at", "created_at",
    )
    actions = ["check_health", "enable", "disable"]

    @admin.action(description="Check health (on a worker)")
    def check_health(self, request, queryset):
        for deployment in queryset:
            services.deployment_request_health_check(deployment=deployment)
        self.message_user(request, f"Health check of {queryset.count()} deployment(s) asked of a worker: reload to see it.")

    @admin.action(description="Enable for generation")
    def enable(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable for generation")
    def disable(self, request, queryset):
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request, queryset, enabled: bool):
        for deployment in queryset:
            try:
                services.deployment_update(deployment=deployment, data={"enabled": enabled})
            except ApplicationError as error:
                self.message_user(request, f"{deployment}: {error.message}", messages.ERROR)


@admin.register(GenerationClaim)
class GenerationClaimAdmin(admin.ModelAdmin):
    list_display = ("item", "state", "worker", "attempts", "claimed_at", "expires_at")
    list_filter = ("state",)
    search_fields = ("worker", "last_error")
    raw_id_fields = ("item",)
    readonly_fields = ("item", "worker", "claimed_at", "expires_at", "attempts", "last_error")
    actions = ["retry"]

    @admin.action(description="Put failed items back in the generation queue")
    def retry(self, request, queryset):
        count = 0
        for claim in queryset.filter(state=ClaimState.FAILED):
            services.claim_retry(claim=claim)
            count += 1
        self.message_user(request, f"{count} item(s) back in the generation queue.")
