"""`manage.py seed_demo` sets up a usable demo and can be run again safely."""
import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.http import HttpRequest

from annotation_site.accounts.services import user_role
from annotation_site.annotation.models import Guideline, Item, Sample, TaskKind

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_users_guidelines_and_items_once(capsys, settings):
    settings.DEBUG = True  # a demo site; the test runner itself runs with DEBUG off
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    for username, role, password in [("annotator", "annotator", "annotate-demo"), ("admin", "admin", "admin-demo"), ("researcher", "researcher", "research-demo")]:
        # django-axes (login throttling) checks every authentication against its request.
        user = authenticate(HttpRequest(), username=username, password=password)
        assert user is not None and user_role(user) == role
        assert f"{username:<11} password: {password}" in out
    assert set(Guideline.objects.values_list("kind", "version")) == {("helpfulness", 1), ("safety", 1)}
    comparisons = Item.objects.filter(task_kind=TaskKind.COMPARISON, status="ready")
    assert comparisons.filter(guideline_kind="helpfulness").count() >= 10
    assert comparisons.filter(guideline_kind="safety").count() >= 10
    assert Item.objects.filter(task_kind=TaskKind.DEMONSTRATION, status="ready").exists()
    assert any(len(item.dialogue.turns) >= 3 for item in comparisons)
    assert Sample.objects.values("model_name").distinct().count() == 2


def test_seed_demo_refuses_to_run_with_debug_off_and_creates_no_user(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="runs only with DEBUG=true"):
        call_command("seed_demo")
    assert not get_user_model().objects.exists()
