"""The loop in the admin: definitions with their versions (an edit here saves a new version too,
through the same service), iterations and steps read-only (they move through the engine)."""
from django.contrib import admin, messages
from django.forms.models import model_to_dict

from annotation_site.errors import ApplicationError
from annotation_site.loop.models import LoopDefinition, LoopIteration, LoopStep, LoopVersion
from annotation_site.loop.services.definitions import loop_version_save


@admin.register(LoopDefinition)
class LoopDefinitionAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "created_at")


@admin.register(LoopVersion)
class LoopVersionAdmin(admin.ModelAdmin):
    list_display = ("definition", "number", "trigger", "ppo", "created_by", "created_at")
    list_filter = ("definition",)

    def get_readonly_fields(self, request, obj=None):
        return ("definition", "number", "created_by", "created_at") if obj else ("number", "created_by", "created_at")

    def save_model(self, request, obj, form, change):
        """Never overwrite a version: store the edited fields as the definition's next one."""
        values = model_to_dict(obj, exclude=["id", "definition", "number", "created_by", "created_at"])
        values["chat_checkpoint"] = obj.chat_checkpoint
        try:
            saved = loop_version_save(definition=obj.definition, values=values, actor=request.user)
        except ApplicationError as error:
            messages.error(request, error.message)
            return
        obj.pk, obj.number = saved.pk, saved.number


class LoopStepInline(admin.TabularInline):
    model = LoopStep
    extra = 0
    can_delete = False
    readonly_fields = ("position", "kind", "state", "run", "attempts", "result", "error", "started_at", "finished_at")


@admin.register(LoopIteration)
class LoopIterationAdmin(admin.ModelAdmin):
    list_display = ("definition", "number", "state", "trigger", "batch", "created_at", "finished_at")
    list_filter = ("state", "definition")
    readonly_fields = [field.name for field in LoopIteration._meta.fields]
    inlines = [LoopStepInline]

    def has_add_permission(self, request):
        return False  # started by a trigger or "run now" on the loop's page
