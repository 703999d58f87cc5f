"""Django admin for the annotation domain: useful lists, and comparison data shown read-only."""
from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import actions as admin_actions
from django.contrib.admin.utils import unquote
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe

from annotation_site.annotation import services
from annotation_site.annotation.markdown import render_markdown
from annotation_site.annotation.models import (
    Assignment,
    Comparison,
    ComparisonAmendment,
    Demonstration,
    Dialogue,
    Guideline,
    Item,
    Sample,
    closed_batch_message,
)
from annotation_site.text_rules import STORABLE_JSON_FIELDS


def _first_turn(dialogue: Dialogue) -> str:
    return dialogue.turns[0]["content"][:80] if dialogue.turns else ""


@admin.register(Guideline)
class GuidelineAdmin(admin.ModelAdmin):
    """Saving an edited guideline publishes a new version; the old one stays for the comparisons made under it."""

    list_display = ("kind", "version", "title", "overlap", "is_active", "created_at")
    list_filter = ("kind", "is_active")
    search_fields = ("title", "text")
    readonly_fields = ("version", "created_at")

    def save_model(self, request, obj, form, change):
        if change and not {"kind", "title", "text", "overlap"} & set(form.changed_data):
            super().save_model(request, obj, form, change)  # only the active flag changed
            return
        published = services.guideline_publish(kind=obj.kind, title=obj.title, text=obj.text, overlap=obj.overlap)
        if change:
            self.message_user(request, f"Published as version {published.version}; the earlier version is kept unchanged.")
        obj.pk, obj.version = published.pk, published.version


class ExportedContentAdmin(admin.ModelAdmin):
    """Dialogues and samples a closed batch exported: shown read-only, never deleted."""

    def has_change_permission(self, request, obj=None):
        return (obj is None or not obj.closed_batch_weeks()) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return (obj is None or not obj.closed_batch_weeks()) and super().has_delete_permission(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        weeks = obj.closed_batch_weeks() if obj is not None else []
        if weeks:
            self.message_user(
                request, f"Exported by closed batch {', '.join(weeks)}: shown read-only; it can be neither changed nor deleted.",
                messages.INFO,
            )
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Dialogue)
class DialogueAdmin(ExportedContentAdmin):
    list_display = ("id", "first_turn", "guideline_kind", "source", "source_name", "author", "created_at")
    list_filter = ("guideline_kind", "source")
    search_fields = ("source_name", "author__username")
    raw_id_fields = ("author", "continues")
    formfield_overrides = STORABLE_JSON_FIELDS

    @admin.display(description="first user turn")
    def first_turn(self, dialogue):
        return _first_turn(dialogue)


@admin.register(Sample)
class SampleAdmin(ExportedContentAdmin):
    list_display = (
        "id", "model_name", "checkpoint", "finish_reason", "completion_tokens", "cleaned_chars", "latency_ms", "created_at",
    )
    list_filter = ("model_name", "finish_reason")
    search_fields = ("model_name", "text")
    raw_id_fields = ("dialogue", "checkpoint")
    formfield_overrides = STORABLE_JSON_FIELDS


class AssignmentInline(admin.TabularInline):
    model = Assignment
    extra = 0
    fields = ("annotator", "status", "flipped", "claimed_at", "expires_at", "finished_at", "skip_reason")
    readonly_fields = fields
    can_delete = False


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("id", "task_kind", "guideline_kind", "status", "overlap", "open_slots", "priority", "created_at")
    list_filter = ("status", "task_kind", "guideline_kind")
    search_fields = ("id", "dialogue__source_name")
    raw_id_fields = ("dialogue", "sample_a", "sample_b")
    inlines = [AssignmentInline]
    actions = ["retire"]

    @admin.action(description="Retire the selected items (annotators will no longer be given them)")
    def retire(self, request, queryset):
        updated = queryset.exclude(status="done").update(status="retired", open_slots=0)
        self.message_user(request, f"Retired {updated} item(s).")


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "annotator", "status", "flipped", "claimed_at", "expires_at", "finished_at")
    list_filter = ("status",)
    search_fields = ("annotator__username", "item__id", "skip_reason")
    raw_id_fields = ("item", "annotator", "guideline")
    date_hierarchy = "claimed_at"


class ReadOnlyAnnotationAdmin(admin.ModelAdmin):
    """Annotations are evidence for training: shown in full, never edited by hand (without change
    permission the admin shows the page read-only, with no Save buttons). One in a closed batch
    cannot be deleted either (the model and, on PostgreSQL, a trigger refuse it as well)."""

    actions = ["delete_selected"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return (obj is None or obj.batch_id is None) and super().has_delete_permission(request, obj)

    def _refuse_batched(self, request, queryset) -> bool:
        rows = queryset.closed_rows()
        if rows:
            self.message_user(
                request, f"Nothing was deleted. {closed_batch_message(self.model, rows, 'deleted')}", messages.ERROR
            )
        return bool(rows)

    @admin.action(description="Delete selected %(verbose_name_plural)s", permissions=["delete"])
    def delete_selected(self, request, queryset):
        """Django's delete action (with its confirmation page), refused with the reason when a
        selected row is in a closed batch, instead of Django's bare "no permission" page."""
        if self._refuse_batched(request, queryset):
            return None
        return admin_actions.delete_selected(self, request, queryset)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and obj.batch_id is not None:
            self.message_user(
                request, f"In closed batch {obj.batch.week}: shown read-only; it can be neither changed nor deleted.",
                messages.INFO,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self._refuse_batched(request, self.model.objects.filter(pk=obj.pk)):
            return HttpResponseRedirect(
                reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk])
            )
        return super().delete_view(request, object_id, extra_context)


def _shown_pair(comparison: Comparison) -> list[dict]:
    """Both responses in the order the annotator saw them, "A" first, with which one was chosen."""
    item = comparison.item
    first, second = (item.sample_b, item.sample_a) if comparison.shown_order == "ba" else (item.sample_a, item.sample_b)
    a_safe, b_safe = comparison.labels_as_shown()
    return [
        {
            "label": label, "sample": sample, "chosen": sample.pk == comparison.chosen_id, "is_safe": safe,
            # Rendered as the annotator saw it; markdown-it escapes any raw HTML in the response.
            "html": mark_safe(sample.text_html or render_markdown(sample.text)),
        }  # fmt: skip
        for label, sample, safe in (("A", first, a_safe), ("B", second, b_safe))
    ]


@admin.register(Comparison)
class ComparisonAdmin(ReadOnlyAnnotationAdmin):
    list_display = ("id", "item", "annotator", "guideline_kind", "rating", "safety_bin", "shown_order", "time_spent_ms", "source", "batch", "created_at")
    list_filter = ("guideline_kind", "rating", "safety_bin", "source", "batch")
    search_fields = ("annotator__username", "source", "item__id")
    date_hierarchy = "created_at"
    list_select_related = ("annotator", "item", "batch")

    def get_readonly_fields(self, request, obj=None):
        return ["what_was_compared", *super().get_readonly_fields(request, obj)]

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["what_was_compared"]}),
            ("Stored record", {"fields": super().get_readonly_fields(request, obj), "classes": ["collapse"]}),
        ]

    @admin.display(description="what was compared")
    def what_was_compared(self, comparison: Comparison):
        if comparison.item.sample_a_id is None:  # an imported pair queued without samples: nothing was shown
            return "-"
        return mark_safe(  # a template: its values are escaped there
            render_to_string(
                "admin/annotation/comparison_shown.html",
                {
                    "comparison": comparison,
                    "turns": comparison.item.dialogue.turns,
                    "responses": _shown_pair(comparison),
                    "amendments": comparison.amendments.select_related("annotator", "old_chosen", "new_chosen"),
                },
            )
        )


@admin.register(ComparisonAmendment)
class ComparisonAmendmentAdmin(ReadOnlyAnnotationAdmin):
    """Who changed which comparison when, from what to what (annotators amend their own)."""

    list_display = ("id", "comparison", "annotator", "amended_at", "old_rating", "new_rating", "old_safety_bin", "new_safety_bin")
    list_filter = ("new_rating",)
    search_fields = ("annotator__username", "comparison__id")
    date_hierarchy = "amended_at"
    list_select_related = ("annotator", "comparison")


@admin.register(Demonstration)
class DemonstrationAdmin(ReadOnlyAnnotationAdmin):
    list_display = ("id", "item", "annotator", "guideline_kind", "time_spent_ms", "source", "batch", "created_at")
    list_filter = ("guideline_kind", "source", "batch")
    search_fields = ("annotator__username", "text")
    date_hierarchy = "created_at"
