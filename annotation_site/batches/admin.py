"""Batches in the admin: the list with counts and state, "close now", re-export, download, live progress."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from annotation_site.batches import selectors, services
from annotation_site.batches.models import Batch, BatchState
from annotation_site.batches.permissions import can_manage_batches, can_read_batches
from annotation_site.errors import ApplicationError


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    # The columns that decide what to do, narrow enough to fit 1,400 px with the filter beside them;
    # the rest is on the batch's own page.
    list_display = ("week", "state_label", "download", "rows", "progress", "closed_at")
    list_filter = ("state", "closed_early")
    actions = ["reexport"]
    readonly_fields = fields = [
        "week", "state_label", "download", "counts_table",
        *(field.name for field in Batch._meta.fields if field.name not in ("id", "week", "state", "counts")),
    ]  # fmt: skip
    change_list_template = "admin/batches/batch/change_list.html"

    class Media:
        js = ("batches/batch_progress.js",)

    # Batches are made by closing a week, never by hand, and their rows are protected.
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return can_read_batches(request.user) and super().has_view_permission(request, obj)

    def has_module_permission(self, request):
        return can_read_batches(request.user) and super().has_module_permission(request)

    def has_reexport_permission(self, request):
        return can_manage_batches(request.user)

    @admin.display(description="comparisons / demonstrations")
    def rows(self, batch: Batch):
        return f'{batch.counts.get("comparisons", 0)} / {batch.counts.get("demonstrations", 0)}'

    @admin.display(description="state", ordering="state")
    def state_label(self, batch: Batch):
        return f"{batch.get_state_display()}{' (closed early)' if batch.closed_early else ''}"

    @admin.display(description="counts")
    def counts_table(self, batch: Batch):
        # The close's counts, and the export's breakdowns (by split, rating, guideline, ...) one row each.
        rows = []
        for key, value in (batch.counts or {}).items():
            if isinstance(value, dict):
                rows += [(f"{key.replace('_', ' ')}: {name}", n) for name, n in sorted(value.items())]
            else:
                rows.append((key.replace("_", " "), value))
        return format_html(
            '<table class="batch-counts"><tbody>{}</tbody></table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )

    @admin.display(description="export progress")
    def progress(self, batch: Batch):
        return format_html(
            '<progress class="batch-progress" max="1" value="{}" data-state="{}" data-url="{}"></progress> '
            '<span class="batch-progress-label">{}%</span>',
            f"{batch.export_progress:.4f}",
            batch.state,
            reverse("api-batch-detail", args=[batch.id]),
            int(round(batch.export_progress * 100)),
        )

    @admin.display(description="download")
    def download(self, batch: Batch):
        if batch.state != BatchState.EXPORTED:
            return batch.export_error[:120] if batch.export_error else "-"
        return format_html('<a class="batch-download" href="{}">zip</a>', reverse("batches:download", args=[batch.id]))

    @admin.action(description="Re-export the selected batches (same bytes)", permissions=["reexport"])
    def reexport(self, request, queryset):
        for batch in queryset:
            try:
                services.batch_reexport(batch=batch, actor=request.user)
            except ApplicationError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, f"Export of batch {batch.week} started.", messages.SUCCESS)

    def get_urls(self):
        return [
            path("close-now/", self.admin_site.admin_view(self.close_now_view), name="batches_batch_close_now"),
            *super().get_urls(),
        ]

    def close_now_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not can_manage_batches(request.user):
            raise PermissionDenied("Only admins can close batches.")
        try:
            batch, created = services.batch_close(week=request.POST.get("week") or None, actor=request.user)
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
        else:
            if created:
                self.message_user(
                    request,
                    f"Closed batch {batch.week} with {batch.counts['comparisons']} comparisons; exporting.",
                    messages.SUCCESS,
                )
            else:
                plan = selectors.close_plan(now=timezone.now())
                self.message_user(
                    request,
                    f"Batch {batch.week} was already closed; comparisons made since go into batch "
                    f"{plan.waiting_for_week}, exported on {plan.waiting_closes_at:%Y-%m-%d %H:%M} UTC.",
                    messages.WARNING,
                )
        return HttpResponseRedirect(reverse("admin:batches_batch_changelist"))

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_manage_batches": can_manage_batches(request.user),
            "unbatched": selectors.unbatched_counts(),
            "plan": selectors.close_plan(now=timezone.now()),
        }
        return super().changelist_view(request, extra_context=extra_context)
