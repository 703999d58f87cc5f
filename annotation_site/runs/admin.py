"""Training runs in the admin: a read-only record with links to the dashboard, where runs are
launched, watched, cancelled and deployed (those go through the services, never a raw edit)."""
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from annotation_site.runs.models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "display_name", "recipe", "status", "progress_percent", "launched_by", "checkpoint", "created_at", "dashboard")
    list_filter = ("status", "recipe")
    search_fields = ("name", "config_name", "notes")
    readonly_fields = [field.name for field in TrainingRun._meta.fields] + ["batches"]

    def has_add_permission(self, request):
        return False  # launched from /runs/launch/, which checks the config

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="progress")
    def progress_percent(self, run):
        return f"{run.progress:.0%}"

    @admin.display(description="")
    def dashboard(self, run):
        return format_html('<a href="{}">open</a>', reverse("runs:detail", args=[run.pk]))
