"""A running canary promoted or rolled back by hand: the iteration ends as for the votes' decision,
recording who decided and why; only researchers and admins may; a second decision is a conflict.
And the names of the steps' runs: two loops whose names slugify the same never clash."""
from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from rest_framework.test import APIClient

from annotation_site.generation.canary import canary_rollback, canary_start
from annotation_site.generation.models import CanaryState, Checkpoint, CheckpointKind
from annotation_site.loop.models import IterationState, LoopIteration, StepKind, StepState, Trigger
from annotation_site.loop.services.iterations import iteration_advance, iteration_start
from tests.annotation_site.generation.test_canary import votes
from tests.annotation_site.loop.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_canary(make_loop, researcher, deployed, tiny_model_dir) -> LoopIteration:
    """An iteration whose steps up to the canary succeeded (as the engine leaves them; the whole
    iteration's test gets there for real) and whose canary has one vote of the four it needs."""
    iteration = iteration_start(definition=make_loop(), trigger=Trigger.MANUAL, started_by=researcher)
    policy = Checkpoint.objects.create(name="tiny-ppo", path=str(tiny_model_dir), kind=CheckpointKind.PPO)
    canary = canary_start(checkpoint=policy, baseline=deployed, share=0.5, min_votes=4, min_win_rate=0.5)
    iteration.steps.exclude(kind=StepKind.CANARY).update(state=StepState.SUCCEEDED)
    iteration.steps.filter(kind=StepKind.CANARY).update(state=StepState.RUNNING, attempts=1,
                                                        result={"deployment": canary.pk, "min_votes": 4})
    LoopIteration.objects.filter(pk=iteration.pk).update(state=IterationState.CANARY, policy_checkpoint=policy,
                                                         canary_deployment=canary)
    votes(canary, deployed, won=0, lost=1)
    iteration.refresh_from_db()
    return iteration


def api_as(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def test_promote_now_ends_the_iteration_promoted_recording_who_and_why(in_canary, researcher, deployed):
    api = api_as(researcher)
    url = f"/api/loop/iterations/{in_canary.pk}/canary/promote/"

    answer = api.post(url, {"reason": "the annotators' comments favour it"}, format="json")

    assert answer.status_code == 200, answer.content
    assert answer.json()["state"] == IterationState.PROMOTED
    in_canary.refresh_from_db()
    assert in_canary.state == IterationState.PROMOTED and in_canary.finished_at is not None
    assert in_canary.outcome == ("tiny-ppo was promoted: the annotators' comments favour it "
                                 f"(decided by hand by {researcher.username})")
    step = in_canary.steps.get(kind=StepKind.CANARY)
    assert step.state == StepState.SUCCEEDED and step.finished_at is not None
    assert (step.result["decision"], step.result["manual"], step.result["decided_by"]) == ("promote", True, researcher.username)
    assert step.result["tally"]["votes"] == 1  # the votes so far, recorded though they did not decide
    canary, baseline = in_canary.canary_deployment, deployed
    canary.refresh_from_db()
    baseline.refresh_from_db()
    assert canary.canary_state == CanaryState.PROMOTED and canary.enabled and not baseline.enabled
    entry = LogEntry.objects.get(additional_data__event="canary.promote")
    assert entry.actor == researcher and "the annotators' comments favour it" in entry.additional_data["reason"]

    # A second click, of either button, is a conflict saying why, and changes nothing.
    for again in (url, f"/api/loop/iterations/{in_canary.pk}/canary/rollback/"):
        refused = api.post(again, {"reason": "again"}, format="json")
        assert refused.status_code == 409
        assert "only a running canary can be promoted or rolled back by hand" in refused.json()["message"]
    in_canary.refresh_from_db()
    assert in_canary.state == IterationState.PROMOTED


def test_roll_back_now_on_the_page_ends_the_iteration_rolled_back_with_the_reason(client, in_canary, researcher, deployed):
    client.force_login(researcher)
    page = client.get(f"/loop/iterations/{in_canary.pk}/").content.decode()
    assert "Promote now" in page and "Roll back now" in page

    without_reason = client.post(f"/loop/iterations/{in_canary.pk}/canary/rollback/", {"reason": " "}, follow=True)
    assert "Say why you decide the canary by hand." in without_reason.content.decode()
    in_canary.refresh_from_db()
    assert in_canary.state == IterationState.CANARY

    done = client.post(f"/loop/iterations/{in_canary.pk}/canary/rollback/", {"reason": "it rambles on safety prompts"})
    assert done.status_code == 302
    in_canary.refresh_from_db()
    assert in_canary.state == IterationState.ROLLED_BACK
    assert in_canary.outcome == f"tiny-ppo was rolled back: it rambles on safety prompts (decided by hand by {researcher.username})"
    step = in_canary.steps.get(kind=StepKind.CANARY)
    assert (step.result["decision"], step.result["decided_by"]) == ("rollback", researcher.username)
    canary = in_canary.canary_deployment
    canary.refresh_from_db()
    deployed.refresh_from_db()
    assert canary.canary_state == CanaryState.ROLLED_BACK and not canary.enabled and deployed.enabled
    assert LogEntry.objects.get(additional_data__event="canary.rollback").actor == researcher

    page = client.get(f"/loop/iterations/{in_canary.pk}/").content.decode()
    assert "by hand by researcher-user" in page and "Roll back now" not in page
    again = client.post(f"/loop/iterations/{in_canary.pk}/canary/promote/", {"reason": "changed my mind"}, follow=True)
    assert again.status_code == 200 and "only a running canary can be promoted" in again.content.decode()


def test_a_canary_its_votes_decided_first_is_a_conflict_not_a_second_decision(in_canary, researcher):
    # Beat's decide_canaries rolled it back a moment before the click; the loop has not seen it yet.
    canary_rollback(canary=in_canary.canary_deployment, reason="below the win rate required")

    refused = api_as(researcher).post(f"/api/loop/iterations/{in_canary.pk}/canary/promote/", {"reason": "I like it"},
                                      format="json")

    assert refused.status_code == 409 and "was rolled back (disabled) already" in refused.json()["message"]
    iteration_advance(iteration_id=in_canary.pk)  # the engine records the decision that was taken
    in_canary.refresh_from_db()
    assert in_canary.state == IterationState.ROLLED_BACK and "below the win rate required" in in_canary.outcome
    assert in_canary.steps.get(kind=StepKind.CANARY).result["manual"] is False


def test_only_researchers_and_admins_decide_a_canary_by_hand(client, in_canary):
    annotator = make_user("annotator")
    for url in (f"/api/loop/iterations/{in_canary.pk}/canary/promote/", f"/api/loop/iterations/{in_canary.pk}/canary/rollback/"):
        assert APIClient().post(url, {"reason": "x"}, format="json").status_code == 401
        assert api_as(annotator).post(url, {"reason": "x"}, format="json").status_code == 403
    assert client.post(f"/loop/iterations/{in_canary.pk}/canary/promote/", {"reason": "x"}).status_code == 302  # to log in
    client.force_login(annotator)
    assert client.post(f"/loop/iterations/{in_canary.pk}/canary/rollback/", {"reason": "x"}).status_code == 403
    admin = make_user("admin")
    assert api_as(admin).post(f"/api/loop/iterations/{in_canary.pk}/canary/rollback/", {"reason": ""},
                              format="json").status_code == 400  # the reason is required
    in_canary.refresh_from_db()
    assert in_canary.state == IterationState.CANARY


def test_two_loops_whose_names_slugify_the_same_get_distinct_run_names(make_loop, researcher, deployed, batch, enqueued):
    first, second = make_loop(name="Weekly loop"), make_loop(name="weekly-loop")
    names = []
    for loop in (first, second):
        iteration = iteration_start(definition=loop, trigger=Trigger.MANUAL, started_by=researcher)
        iteration_advance(iteration_id=iteration.pk)
        step = iteration.steps.get(kind=StepKind.REWARD_MODEL_HELPFULNESS)
        assert step.state == StepState.RUNNING, step.error  # the second is not refused for a taken name
        names.append(step.run.name)
    assert names == [f"loop-{first.pk}-weekly-loop-1-rm-helpfulness-1", f"loop-{second.pk}-weekly-loop-1-rm-helpfulness-1"]
