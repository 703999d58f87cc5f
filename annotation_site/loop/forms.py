"""The loop definition's form: every field of a version; saving it stores the next version."""
from __future__ import annotations

import json

from django import forms

from annotation_site.errors import ApplicationError
from annotation_site.loop.models import LoopVersion
from annotation_site.loop.services.definitions import CONFIG_FIELDS, OVERRIDE_FIELDS
from annotation_site.runs import selectors as run_selectors
from annotation_site.runs.configs import parse_overrides, shipped_configs
from annotation_site.runs.services import GUIDELINES


class OverridesField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 2, "placeholder": "max_steps=20"})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return parse_overrides(super().to_python(value))


class SourcesField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3, "placeholder": '[{"source": "anthropic-harmless", "reward_model": "safety", "share": 0.1}]'})

    def prepare_value(self, value):
        return json.dumps(value) if isinstance(value, list) else value

    def to_python(self, value):
        text = (super().to_python(value) or "").strip()
        if not text:
            return []
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"The mix is JSON: a list of entries ({error.msg}, line {error.lineno}).") from None


class LoopVersionForm(forms.ModelForm):
    name = forms.CharField(max_length=200, required=False, help_text="The loop's name (new loops only).")
    guidelines = forms.MultipleChoiceField(choices=[(g, g) for g in GUIDELINES], widget=forms.CheckboxSelectMultiple,
                                           initial=list(GUIDELINES))
    sources = SourcesField(required=False, label="Imported sources and their shares",
                           help_text='JSON list: {"source": an imported dataset or "batches", "reward_model": helpfulness|'
                                     'safety, "share": fraction of that RM\'s mix, "guidelines": optional filter}.')

    class Meta:
        model = LoopVersion
        exclude = ["definition", "number", "created_by", "created_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["chat_checkpoint"].queryset = run_selectors.chat_checkpoints()
        for field, recipe in CONFIG_FIELDS.items():
            self.fields[field] = forms.ChoiceField(
                required=False, label=self.fields[field].label,
                choices=[("", "(recipe defaults)")] + [(c.name, c.name) for c in shipped_configs(recipe)],
            )
        for field in OVERRIDE_FIELDS:
            self.fields[field] = OverridesField(required=False, label=self.fields[field].label,
                                                help_text="key=value per line, on top of the shipped config.")

    def version_values(self) -> dict:
        return {key: value for key, value in self.cleaned_data.items() if key != "name"}

    def add_application_error(self, error: ApplicationError) -> None:
        field = error.extra.get("field")
        self.add_error(field if field in self.fields else None, error.extra.get("errors") or [error.message])
