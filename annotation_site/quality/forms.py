from __future__ import annotations

from django import forms

from annotation_site.annotation.models import Rating
from annotation_site.quality.models import Decision


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=Decision.choices)
    reason = forms.CharField(max_length=500)
    # For a correction: which of the item's responses is better ("a" or "b" in the item's order).
    better = forms.ChoiceField(choices=[("", "-"), ("a", "Response 1"), ("b", "Response 2")], required=False)
    rating = forms.ChoiceField(choices=[("", "-")] + list(Rating.choices), required=False)
    chosen_is_safe = forms.NullBooleanField(required=False)
    rejected_is_safe = forms.NullBooleanField(required=False)


class ExclusionForm(forms.Form):
    since = forms.DateField()
    until = forms.DateField()
    reason = forms.CharField(max_length=500)
    confirm = forms.BooleanField(required=False)
