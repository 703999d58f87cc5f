from django.contrib import admin

from annotation_site.accounts.models import AnnotatorProfile
from annotation_site.text_rules import STORABLE_JSON_FIELDS


@admin.register(AnnotatorProfile)
class AnnotatorProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "pseudonym", "weekly_quota", "guideline_kinds", "created_at")
    search_fields = ("user__username", "pseudonym")
    list_editable = ("weekly_quota",)
    readonly_fields = ("pseudonym", "created_at")
    raw_id_fields = ("user",)
    formfield_overrides = STORABLE_JSON_FIELDS
