"""The loop's pages and its definition: versions on every save, checks with clear messages, the
steps shown before they run, the schedule kept in beat, the iteration page's numbers and buttons."""
from __future__ import annotations

import json

import pytest
from django_celery_beat.models import PeriodicTask

from annotation_site.loop.models import IterationState, LoopDefinition, LoopIteration, LoopStep, StepKind, StepState, Trigger
from annotation_site.loop.services.definitions import DefinitionInvalid, loop_version_save
from annotation_site.loop.services.iterations import iteration_start
from tests.annotation_site.loop.conftest import tiny_values

pytestmark = pytest.mark.django_db


def form_data(chat_checkpoint, **values) -> dict:
    data = {key: value for key, value in tiny_values(chat_checkpoint).items() if key != "chat_checkpoint"}
    data.update(chat_checkpoint=chat_checkpoint.pk, reward_model_start="chat_model", reward_model_max_drop=0.02,
                min_win_rate=0.5, max_unsafe_share_rise=0.0, schedule="0 6 * * 1", sources="[]")
    for key in ("reward_model_overrides", "rejection_sampling_overrides", "evaluation_overrides"):
        data[key] = "\n".join(data[key])
    return data | values


def test_each_save_of_the_form_is_a_new_version_and_the_page_lists_the_steps(client, researcher, chat_checkpoint):
    client.force_login(researcher)
    created = client.post("/loop/new/", form_data(chat_checkpoint, name="weekly"))
    assert created.status_code == 302
    definition = LoopDefinition.objects.get(name="weekly")
    edited = client.post(f"/loop/{definition.pk}/", form_data(chat_checkpoint, ppo="on", min_win_rate=0.6))
    assert edited.status_code == 302

    assert list(definition.versions.values_list("number", "ppo", "min_win_rate")) == [(2, True, 0.6), (1, False, 0.5)]
    assert definition.current_version.created_by == researcher
    page = client.get(f"/loop/{definition.pk}/").content.decode()
    assert "version 2" in page and "PPO from the rejection-sampling checkpoint</strong>: defaults" in page
    assert "win rate by the combined reward &gt;= 60%" in page and "Run now" in page


def test_a_bad_definition_is_refused_with_the_reason_beside_its_field(client, researcher, chat_checkpoint):
    client.force_login(researcher)
    refused = client.post("/loop/new/", form_data(chat_checkpoint, name="weekly", reward_model_overrides="learning_rat=1",
                                                  sources='[{"source": "nowhere", "reward_model": "safety", "share": 0.1}]'))
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "learning_rat: unknown key for the reward_model recipe" in page
    assert not LoopDefinition.objects.exists()
    with pytest.raises(DefinitionInvalid, match='no imported dataset "nowhere"'):
        loop_version_save(name="weekly", values=tiny_values(chat_checkpoint, sources=[
            {"source": "nowhere", "reward_model": "safety", "share": 0.1}]))
    with pytest.raises(DefinitionInvalid, match="is not a crontab"):
        loop_version_save(name="weekly", values=tiny_values(chat_checkpoint, trigger=Trigger.SCHEDULE, schedule="weekly"))
    with pytest.raises(DefinitionInvalid, match="shares add up to 1.2"):
        loop_version_save(name="weekly", values=tiny_values(chat_checkpoint, sources=[
            {"source": "batches", "reward_model": "safety", "share": 0.6},
            {"source": "batches", "reward_model": "safety", "share": 0.6}]))


def test_a_scheduled_loop_has_its_beat_entry_only_while_it_is_scheduled(researcher, chat_checkpoint):
    version = loop_version_save(name="weekly", values=tiny_values(chat_checkpoint, trigger=Trigger.SCHEDULE, schedule="30 5 * * 2"))
    entry = PeriodicTask.objects.get(name=f"loop {version.definition_id}: scheduled iteration")
    assert entry.enabled and entry.task == "annotation_site.loop.tasks.loop_start_scheduled"
    assert (entry.crontab.minute, entry.crontab.hour, entry.crontab.day_of_week) == ("30", "5", "2")
    loop_version_save(definition=version.definition, values=tiny_values(chat_checkpoint, trigger=Trigger.MANUAL))
    entry.refresh_from_db()
    assert not entry.enabled


def test_the_iteration_page_shows_the_gates_numbers_and_offers_retry_only_when_failed(
    client, researcher, chat_checkpoint, deployed, make_loop
):
    loop = make_loop()
    iteration = iteration_start(definition=loop, trigger=Trigger.MANUAL, started_by=researcher)
    LoopStep.objects.filter(iteration=iteration, kind=StepKind.POLICY_GATE).update(state=StepState.SUCCEEDED, result={
        "win_rate": 0.25, "min_win_rate": 0.5, "wins": 1, "ties": 0, "losses": 3, "unsafe_share_new": 0.5,
        "unsafe_share_deployed": 0.25, "passed": False, "reason": "win rate 25.0% by the combined reward is below"})
    LoopIteration.objects.filter(pk=iteration.pk).update(state=IterationState.FAILED, outcome="Step 0 failed: boom")
    client.force_login(researcher)

    page = client.get(f"/loop/iterations/{iteration.pk}/").content.decode()

    assert "win rate 0.250 (need 0.50; 1/0/3 wins/ties/losses)" in page and "0.250 → 0.500" in page
    assert "Retry from the failed step" in page and "Cancel the iteration" not in page
    assert "Step 0 failed: boom" in page and f"/loop/iterations/{iteration.pk}/retry/" in page
    for listing in (client.get("/loop/").content.decode(), client.get("/runs/").content.decode()):  # the dashboard too
        assert f'href="/loop/iterations/{iteration.pk}/"' in listing and "Step 0 failed: boom" in listing


def test_run_now_twice_is_refused_while_an_iteration_runs(client, researcher, deployed, make_loop):
    loop = make_loop()
    client.force_login(researcher)
    first = client.post(f"/loop/{loop.pk}/run/")
    iteration = LoopIteration.objects.get()
    assert first.status_code == 302 and first["Location"] == f"/loop/iterations/{iteration.pk}/"
    again = client.post(f"/loop/{loop.pk}/run/", follow=True)
    assert "is still running: wait for it or cancel it" in again.content.decode()
    assert LoopIteration.objects.count() == 1 and iteration.baseline_deployment == deployed


def test_annotators_cannot_open_the_loop(client, chat_checkpoint, make_loop):
    from tests.annotation_site.loop.conftest import make_user

    loop = make_loop()
    client.force_login(make_user("annotator", "ann"))
    assert client.get("/loop/").status_code == 403
    assert client.post(f"/loop/{loop.pk}/run/").status_code == 403
    assert not LoopIteration.objects.exists()


def test_the_api_starts_reads_and_refuses_what_the_state_does_not_allow(researcher, deployed, make_loop):
    from rest_framework.test import APIClient

    loop = make_loop()
    api = APIClient()
    api.force_authenticate(researcher)
    started = api.post(f"/api/loop/{loop.pk}/run/")
    assert started.status_code == 201 and started.json()["state"] == "running" and len(started.json()["steps"]) == 9
    iteration_id = started.json()["id"]
    assert api.get(f"/api/loop/iterations/{iteration_id}/").json()["steps"][0]["kind"] == "rm_helpfulness"
    assert [row["id"] for row in api.get("/api/loop/iterations/").json()] == [iteration_id]
    refused = api.post(f"/api/loop/iterations/{iteration_id}/retry/")
    assert refused.status_code == 409 and "only a failed iteration can be retried" in refused.json()["message"]
    assert api.post(f"/api/loop/iterations/{iteration_id}/cancel/").json()["state"] == "cancelled"
    assert api.post(f"/api/loop/iterations/{iteration_id}/cancel/").status_code == 409


def test_an_edit_in_the_admin_saves_a_new_version(client, chat_checkpoint, make_loop):
    from django.contrib.auth import get_user_model

    loop = make_loop()
    version = loop.current_version
    client.force_login(get_user_model().objects.create_superuser(username="root", password="pw-123456"))
    page = client.get(f"/admin/loop/loopversion/{version.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {}
    for name in form.fields:  # the form as the browser would send it back (JSON fields as text, unticked boxes left out)
        value = form[name].value()
        if value is None or value is False:
            continue
        data[name] = json.dumps(value) if isinstance(value, list | dict) else value
    saved = client.post(f"/admin/loop/loopversion/{version.pk}/change/", data | {"min_win_rate": "0.7"})

    assert saved.status_code == 302
    assert list(loop.versions.values_list("number", "min_win_rate")) == [(2, 0.7), (1, 0.5)]
    assert client.get("/admin/loop/loopiteration/").status_code == 200
