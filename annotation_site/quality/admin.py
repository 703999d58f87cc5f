"""Quality control in the admin: thresholds per guideline, gold items (mark any comparison item gold
with its expected answer), and the flags, reviews and exclusions, which are records (read-only)."""
from django.contrib import admin, messages

from annotation_site.errors import ApplicationError
from annotation_site.quality import services
from annotation_site.quality.models import Exclusion, Flag, GoldItem, GuidelineQuality, Review


@admin.register(GuidelineQuality)
class GuidelineQualityAdmin(admin.ModelAdmin):
    list_display = ("guideline_kind", "gold_rate", "too_fast_ms", "reward_model")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        from annotation_site.quality.selectors import gold_rates_forget

        gold_rates_forget()


@admin.register(GoldItem)
class GoldItemAdmin(admin.ModelAdmin):
    list_display = ("item", "better_sample", "weakest_rating", "better_is_safe", "other_is_safe", "source", "created_at")
    raw_id_fields = ("item", "better_sample")
    readonly_fields = ("created_by", "created_at")
    list_filter = ("item__guideline_kind", "source")

    def save_model(self, request, obj, form, change):
        # Marking goes through the service: it takes the item out of the ordinary queue.
        try:
            services.gold_mark(
                item=obj.item, better_sample=obj.better_sample, weakest_rating=obj.weakest_rating,
                better_is_safe=obj.better_is_safe, other_is_safe=obj.other_is_safe, source=obj.source or "admin",
                created_by=request.user,
            )  # fmt: skip
        except ApplicationError as error:
            messages.error(request, error.message)

    def delete_model(self, request, obj):
        services.gold_unmark(item=obj.item)

    def delete_queryset(self, request, queryset):
        for gold in queryset.select_related("item"):
            services.gold_unmark(item=gold.item)


class _RecordAdmin(admin.ModelAdmin):
    """Decisions are records: they are read here, never edited or deleted."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Flag)
class FlagAdmin(_RecordAdmin):
    list_display = ("comparison", "reason", "detail", "created_at")
    list_filter = ("reason",)


@admin.register(Review)
class ReviewAdmin(_RecordAdmin):
    list_display = ("comparison", "decision", "reason", "reviewer", "correction", "created_at")
    list_filter = ("decision",)


@admin.register(Exclusion)
class ExclusionAdmin(_RecordAdmin):
    list_display = ("comparison", "reason", "excluded_by", "created_at")
