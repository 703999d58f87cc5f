"""`manage.py seed_demo` sets up a usable demo and can be run again safely."""
import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from annotation_site.accounts.services import user_role
from annotation_site.annotation.models import Guideline, Item, Sample, TaskKind

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_users_guidelines_and_items_once(capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    for username, role, password in [("annotator", "annotator", "annotate-demo"), ("admin", "admin", "admin-demo"), ("researcher", "researcher", "research-demo")]:
        user = authenticate(username=username, password=password)
        assert user is not None and user_role(user) == role
        assert f"{username:<11} password: {password}" in out
    assert set(Guideline.objects.values_list("kind", "version")) == {("helpfulness", 1), ("safety", 1)}
    comparisons = Item.objects.filter(task_kind=TaskKind.COMPARISON, status="ready")
    assert comparisons.filter(guideline_kind="helpfulness").count() >= 10
    assert comparisons.filter(guideline_kind="safety").count() >= 10
    assert Item.objects.filter(task_kind=TaskKind.DEMONSTRATION, status="ready").exists()
    assert any(len(item.dialogue.turns) >= 3 for item in comparisons)
    assert Sample.objects.values("model_name").distinct().count() == 2
