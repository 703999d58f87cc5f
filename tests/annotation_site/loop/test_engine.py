"""The iteration engine with real recipes on tiny models, the training worker inline: a failed step
stops the iteration and a retry reruns it, a cancel cancels the running step's run, and both gates
refuse what they must (thresholds no output can meet)."""
from __future__ import annotations

import json

import pytest
import yaml

from annotation_site.errors import Conflict
from annotation_site.generation.models import Checkpoint, CheckpointKind
from annotation_site.loop.models import IterationState, LoopIteration, StepKind, StepState, Trigger
from annotation_site.loop.services.definitions import loop_version_save
from annotation_site.loop.services.iterations import iteration_cancel, iteration_retry, iteration_start
from annotation_site.runs import artifacts
from annotation_site.runs.models import Recipe, RunStatus
from tests.annotation_site.loop.conftest import TINY_REJECTION_SAMPLING, TINY_SFT, drive, step_states, tiny_values
from tests.annotation_site.runs.conftest import TINY_REWARD_MODEL

pytestmark = pytest.mark.django_db


def test_a_failed_step_stops_the_iteration_a_retry_reruns_it_and_a_cancel_cancels_its_run(
    make_loop, researcher, chat_checkpoint, deployed, batch, enqueued
):
    # Every pair is longer than 8 tokens: the reward-model recipe refuses to train.
    loop = make_loop(reward_model_overrides=[*TINY_REWARD_MODEL, "max_steps=2", "max_length=8"])
    iteration = drive(iteration_start(definition=loop, trigger=Trigger.MANUAL, started_by=researcher))

    assert iteration.state == IterationState.FAILED
    failed = iteration.steps.get(kind=StepKind.REWARD_MODEL_HELPFULNESS)
    assert failed.state == StepState.FAILED and failed.run.status == RunStatus.FAILED
    assert "longer than max_length=8" in failed.error and "retry from this step" in iteration.outcome
    assert set(step_states(iteration).values()) == {StepState.FAILED, StepState.SKIPPED}
    assert failed.run.batches.get() == batch and failed.run.base_checkpoint == chat_checkpoint

    # Fixed in a new version; the retry runs it from the failed step and records the version.
    fixed = loop_version_save(definition=loop, values=tiny_values(chat_checkpoint), actor=researcher)
    iteration_retry(iteration=iteration, actor=researcher)
    iteration = drive(iteration, stop=lambda it: it.steps.filter(kind=StepKind.REWARD_MODEL_SAFETY, run__isnull=False).exists())

    assert iteration.state == IterationState.RUNNING and iteration.version == fixed
    retried = iteration.steps.get(kind=StepKind.REWARD_MODEL_HELPFULNESS)
    assert retried.state == StepState.SUCCEEDED and retried.attempts == 2 and retried.run != failed.run
    assert retried.run.checkpoint.kind == CheckpointKind.REWARD_MODEL
    assert retried.result["checkpoint"] == retried.run.checkpoint.name
    # The paper's mix (the default): all helpfulness data, a quarter of the mix safety data.
    data = yaml.safe_load(retried.run.config_text)["data"]
    assert [(s["name"], s["guidelines"], s.get("share")) for s in data] == [
        ("2026-W48", ["helpfulness"], None), ("2026-W48-mix0", ["safety"], 0.25)]
    assert "2026-W48-mix0" in json.loads((artifacts.run_paths(retried.run).out / "data.json").read_text())["rows_per_source"]
    safety = iteration.steps.get(kind=StepKind.REWARD_MODEL_SAFETY)
    assert safety.state == StepState.RUNNING and safety.run.status == RunStatus.QUEUED

    iteration_cancel(iteration=iteration, actor=researcher)

    iteration.refresh_from_db()
    safety.refresh_from_db()
    assert iteration.state == IterationState.CANCELLED and "cancelled by researcher-user" in iteration.outcome
    assert safety.state == StepState.CANCELLED and safety.run.status == RunStatus.CANCELLED
    assert {state for kind, state in step_states(iteration).items() if kind not in (
        StepKind.REWARD_MODEL_HELPFULNESS, StepKind.REWARD_MODEL_SAFETY)} == {StepState.SKIPPED}
    with pytest.raises(Conflict):
        iteration_cancel(iteration=iteration, actor=researcher)
    with pytest.raises(Conflict):
        iteration_retry(iteration=iteration, actor=researcher)


def test_the_policy_gate_stops_a_policy_that_cannot_reach_the_win_rate(make_loop, researcher, deployed, batch, enqueued):
    # Fine-tuning at learning rate 0 leaves the deployed weights: every prompt is a tie, a win rate
    # of exactly one half, below the 75% asked.
    loop = make_loop(min_win_rate=0.75, rejection_sampling_overrides=[
        *TINY_REJECTION_SAMPLING[:-1], f"sft={TINY_SFT.replace('learning_rate: 1.0e-3', 'learning_rate: 0')}"])
    iteration = drive(iteration_start(definition=loop, trigger=Trigger.MANUAL, started_by=researcher))

    assert iteration.state == IterationState.REJECTED, iteration.outcome
    states = step_states(iteration)
    assert states == {
        StepKind.REWARD_MODEL_HELPFULNESS: StepState.SUCCEEDED, StepKind.REWARD_MODEL_SAFETY: StepState.SUCCEEDED,
        # The loop's first reward models have nothing to be compared with: they are used.
        StepKind.GATE_HELPFULNESS: StepState.SKIPPED, StepKind.GATE_SAFETY: StepState.SKIPPED,
        StepKind.REJECTION_SAMPLING: StepState.SUCCEEDED, StepKind.PPO: StepState.SKIPPED,
        StepKind.EVALUATION: StepState.SUCCEEDED, StepKind.POLICY_GATE: StepState.SUCCEEDED,
        StepKind.CANARY: StepState.SKIPPED,
    }
    gate = iteration.steps.get(kind=StepKind.POLICY_GATE).result
    assert gate["passed"] is False and gate["win_rate"] == 0.5 and gate["wins"] == gate["losses"] == 0
    assert "win rate 50.0% by the combined reward is below the 75.0% required" in iteration.outcome
    helpfulness = iteration.steps.get(kind=StepKind.REWARD_MODEL_HELPFULNESS).run.checkpoint
    assert iteration.helpfulness_reward_model == helpfulness
    evaluation = iteration.steps.get(kind=StepKind.EVALUATION).run
    assert evaluation.recipe == Recipe.EVALUATE_POLICY and evaluation.base_checkpoint == iteration.policy_checkpoint
    assert iteration.policy_checkpoint.kind == CheckpointKind.REJECTION_SAMPLING
    assert iteration.baseline_checkpoint == deployed.checkpoint and iteration.canary_deployment is None

    # The next iteration gates its reward models against these and pools this one's best answers.
    second = drive(iteration_start(definition=loop, trigger=Trigger.MANUAL, started_by=researcher),
                   stop=lambda it: it.steps.filter(kind=StepKind.REJECTION_SAMPLING, run__isnull=False).exists())
    for kind in (StepKind.GATE_HELPFULNESS, StepKind.GATE_SAFETY):
        gate = second.steps.get(kind=kind)
        assert gate.state == StepState.SUCCEEDED and gate.run.recipe == Recipe.EVALUATE_REWARD_MODEL
        assert gate.result["old"] in (helpfulness.name, iteration.safety_reward_model.name)
        assert gate.result["passed"] == all(split["drop"] <= gate.result["threshold"] for split in gate.result["splits"].values())
    sampling = second.steps.get(kind=StepKind.REJECTION_SAMPLING)
    first_sampling = iteration.steps.get(kind=StepKind.REJECTION_SAMPLING).run
    assert sampling.result["pooled_with_runs"] == [first_sampling.pk]
    assert yaml.safe_load(sampling.run.config_text)["previous_pools"] == [str(artifacts.pool_path(first_sampling))]
    iteration_cancel(iteration=second, actor=researcher)


def test_the_reward_model_gate_keeps_the_reward_model_in_use_when_the_new_one_is_not_better_enough(
    make_loop, researcher, chat_checkpoint, deployed, batch, enqueued, settings, tiny_model_dir
):
    from tests.training.rlhf_models import build_tiny_reward_model

    # The reward model in use, kept by an earlier iteration; the new one continues it at learning
    # rate 0 (the same weights, the same accuracy), and the gate asks for a 1% gain.
    in_use = Checkpoint.objects.create(
        name="rm-in-use", kind=CheckpointKind.REWARD_MODEL,
        path=str(build_tiny_reward_model(tiny_model_dir, settings.CHECKPOINT_ROOT.parent / "rm-in-use", seed=3)))
    safety = Checkpoint.objects.create(
        name="safety-rm-in-use", kind=CheckpointKind.REWARD_MODEL,
        path=str(build_tiny_reward_model(tiny_model_dir, settings.CHECKPOINT_ROOT.parent / "safety-rm", seed=4)))
    loop = make_loop(guidelines=["helpfulness"], reward_model_start="last_reward_model", reward_model_max_drop=-0.01,
                     reward_model_overrides=[*TINY_REWARD_MODEL, "max_steps=2", "learning_rate=0"])
    LoopIteration.objects.create(definition=loop, version=loop.current_version, number=1, trigger=Trigger.MANUAL,
                                 state=IterationState.PROMOTED, baseline_checkpoint=chat_checkpoint,
                                 helpfulness_reward_model=in_use, safety_reward_model=safety)
    iteration = drive(iteration_start(definition=loop, trigger=Trigger.MANUAL, started_by=researcher),
                      stop=lambda it: it.steps.filter(kind=StepKind.REJECTION_SAMPLING, run__isnull=False).exists())

    trained = iteration.steps.get(kind=StepKind.REWARD_MODEL_HELPFULNESS).run
    assert trained.base_checkpoint == in_use
    gate = iteration.steps.get(kind=StepKind.GATE_HELPFULNESS)
    assert gate.state == StepState.SUCCEEDED and gate.run.recipe == Recipe.EVALUATE_REWARD_MODEL
    assert gate.result["passed"] is False and gate.result["kept"] == "rm-in-use"
    [split] = gate.result["splits"].values()
    assert split["drop"] == 0 and split["new"] == split["old"]
    assert f"{trained.checkpoint.name} is not used" in gate.result["reason"] and "rm-in-use stays in use" in gate.result["reason"]
    assert iteration.helpfulness_reward_model == in_use
    # Rejection sampling scores with the reward models in use: the helpfulness one the gate kept.
    sampling = iteration.steps.get(kind=StepKind.REJECTION_SAMPLING).run
    assert sampling.config_text.count(in_use.path) == 1 and safety.path in sampling.config_text
    iteration_cancel(iteration=iteration, actor=researcher)


def test_with_ppo_on_the_policy_evaluated_is_ppo_from_the_rejection_sampling_checkpoint(
    make_loop, researcher, deployed, batch, enqueued
):
    from tests.annotation_site.runs.conftest import TINY

    loop = make_loop(ppo=True, ppo_overrides=TINY["ppo"])
    iteration = drive(iteration_start(definition=loop, trigger=Trigger.MANUAL, started_by=researcher),
                      stop=lambda it: it.steps.filter(kind=StepKind.EVALUATION, run__isnull=False).exists())

    sampling = iteration.steps.get(kind=StepKind.REJECTION_SAMPLING).run
    ppo = iteration.steps.get(kind=StepKind.PPO).run
    assert ppo.recipe == Recipe.PPO and ppo.status == RunStatus.SUCCEEDED and ppo.base_checkpoint == sampling.checkpoint
    assert iteration.policy_checkpoint == ppo.checkpoint
    assert iteration.steps.get(kind=StepKind.EVALUATION).run.base_checkpoint == ppo.checkpoint
    iteration_cancel(iteration=iteration, actor=researcher)
