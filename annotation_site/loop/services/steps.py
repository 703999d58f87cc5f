"""What each step of an iteration launches (an ordinary run of the runs app, through `run_launch`)
and what it decides once that run succeeded. The engine (services.iterations) calls `step_start`
and, when the step's run has succeeded, `step_finish`; both return the step's new state.

The data every step reads is built here from the exported weekly batches (every batch up to the
iteration's, as the paper trains each reward model on all data so far) and the imported sources
of the definition's mix, exported under EXPORT_ROOT/loop-sources/ for the iteration.
"""
from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.utils.text import slugify

from annotation_site.batches.models import Batch, BatchState
from annotation_site.batches.services import batch_folder, source_export
from annotation_site.errors import ApplicationError
from annotation_site.generation.models import Checkpoint
from annotation_site.loop.models import (
    IterationState,
    LoopIteration,
    LoopStep,
    RewardModelStart,
    StepKind,
    StepState,
)
from annotation_site.runs import artifacts
from annotation_site.runs.models import Recipe, RunStatus, TrainingRun
from annotation_site.runs.services import run_launch

logger = logging.getLogger(__name__)

REWARD_MODEL_STEPS = {"helpfulness": StepKind.REWARD_MODEL_HELPFULNESS, "safety": StepKind.REWARD_MODEL_SAFETY}
GATE_STEPS = {"helpfulness": StepKind.GATE_HELPFULNESS, "safety": StepKind.GATE_SAFETY}
KEPT_FIELD = {"helpfulness": "helpfulness_reward_model", "safety": "safety_reward_model"}


class StepRefused(ApplicationError):
    """A step that cannot start (missing input); the iteration fails with this message."""


def plan(iteration: LoopIteration) -> list[tuple[str, str]]:
    """The steps an iteration of this version runs, in order, with why a step is skipped ("" if not)."""
    version = iteration.version
    steps = [(REWARD_MODEL_STEPS[g], "") for g in version.guidelines]
    steps += [(GATE_STEPS[g], "") for g in version.guidelines]
    steps += [
        (StepKind.REJECTION_SAMPLING, ""),
        (StepKind.PPO, "" if version.ppo else f"PPO is off in version {version.number}."),
        (StepKind.EVALUATION, ""),
        (StepKind.POLICY_GATE, ""),
        (StepKind.CANARY, ""),
    ]
    return steps


# --- data ------------------------------------------------------------------------------------------


def batches_so_far(iteration: LoopIteration) -> list[Batch]:
    """Every exported batch up to the iteration's (all exported batches for one started by hand)."""
    batches = Batch.objects.filter(state=BatchState.EXPORTED).order_by("week")
    if iteration.batch_id:
        batches = batches.filter(week__lte=iteration.batch.week)
    found = [batch for batch in batches if batch_folder(batch).is_dir()]
    if not found:
        raise StepRefused("There is no exported batch to train on yet: close and export a weekly batch first.")
    return found


def _source_folder(iteration: LoopIteration, name: str) -> Path:
    """The imported dataset `name` exported for this iteration (once: a retry reads the same folder)."""
    folder = Path(settings.EXPORT_ROOT) / "loop-sources" / f"iteration-{iteration.pk}" / slugify(name)
    if not folder.is_dir():
        source_export(name=name, out_dir=folder)
    return folder


def reward_model_data(iteration: LoopIteration, guideline: str) -> list[dict]:
    """The mix of one reward model: the guideline's data of every batch so far, plus the mix's
    shares (§3.2.2): imported datasets, or "batches" (the batches' rows of other guidelines,
    its share split evenly over the batches)."""
    batches = batches_so_far(iteration)
    data = [{"path": str(batch_folder(batch).resolve()), "name": batch.week, "guidelines": [guideline]} for batch in batches]
    for index, entry in enumerate(e for e in iteration.version.sources if e["reward_model"] == guideline):
        extra = {"guidelines": entry["guidelines"]} if entry.get("guidelines") else {}
        if entry["source"] == "batches":
            data += [{"path": str(batch_folder(batch).resolve()), "name": f"{batch.week}-mix{index}", "share": entry["share"] / len(batches),
                      "evaluate": False, **extra} for batch in batches]
        else:
            folder = _source_folder(iteration, entry["source"])
            data.append({"path": str(folder.resolve()), "name": f"{entry['source']}-mix{index}", "share": entry["share"],
                         "evaluate": False, **extra})
    return data


def batch_sources(iteration: LoopIteration, guideline: str | None = None) -> list[dict]:
    """Every batch so far, optionally one guideline's rows: the recipes read their prompts (rejection
    sampling, PPO: the training split) or their held-out splits (the evaluations) from them."""
    extra = {"guidelines": [guideline]} if guideline else {}
    return [{"path": str(batch_folder(batch).resolve()), "name": batch.week, **extra} for batch in batches_so_far(iteration)]


# --- the steps -------------------------------------------------------------------------------------


def _run_name(step: LoopStep) -> str:
    """Unique by construction: the loop's id tells apart two loops whose names slugify the same
    (the slug, cut short, only makes the name readable)."""
    iteration = step.iteration
    slug = slugify(iteration.definition.name)[:100]
    return f"loop-{iteration.definition_id}-{slug}-{iteration.number}-{step.kind.replace('_', '-')}-{step.attempts}"


def _launch(step: LoopStep, **kwargs) -> TrainingRun:
    iteration = step.iteration
    return run_launch(
        name=_run_name(step), launched_by=iteration.started_by,
        notes=f"Step {step.position} ({step.get_kind_display()}) of {iteration}, loop version {iteration.version.number}.",
        **kwargs,
    )


def _step_run(iteration: LoopIteration, kind: str) -> TrainingRun | None:
    step = iteration.steps.filter(kind=kind, state=StepState.SUCCEEDED).select_related("run__checkpoint").first()
    return step.run if step else None


def _guideline_of(kind: str) -> str:
    return next(g for steps in (REWARD_MODEL_STEPS, GATE_STEPS) for g, k in steps.items() if k == kind)


def kept_reward_model(iteration: LoopIteration, guideline: str) -> Checkpoint | None:
    """The reward model of `guideline` in use before this iteration: the last one an earlier
    iteration of the loop kept."""
    field = KEPT_FIELD[guideline]
    earlier = (LoopIteration.objects.filter(definition=iteration.definition, number__lt=iteration.number)
               .exclude(**{f"{field}__isnull": True}).order_by("-number").select_related(field).first())
    return getattr(earlier, field) if earlier else None


def _reward_models(iteration: LoopIteration) -> dict:
    """The reward models the policy steps use: those the gates kept, else the ones in use."""
    chosen = {}
    for guideline, field in KEPT_FIELD.items():
        checkpoint = getattr(iteration, field) or kept_reward_model(iteration, guideline)
        if checkpoint is None:
            raise StepRefused(f"No {guideline} reward model: train one (add {guideline} to the loop's guidelines).")
        chosen[field] = checkpoint
    return chosen


def _policy(iteration: LoopIteration) -> Checkpoint:
    ppo = _step_run(iteration, StepKind.PPO)
    rejection_sampling = _step_run(iteration, StepKind.REJECTION_SAMPLING)
    run = ppo or rejection_sampling
    if run is None or run.checkpoint is None:
        raise StepRefused("The policy steps registered no checkpoint to evaluate.")
    return run.checkpoint


def step_start(step: LoopStep) -> str:
    """Start the step: launch its run (RUNNING), or decide at once (SUCCEEDED/SKIPPED)."""
    iteration, version = step.iteration, step.iteration.version
    kind = step.kind
    if kind in REWARD_MODEL_STEPS.values():
        guideline = _guideline_of(kind)
        start = version.chat_checkpoint
        if version.reward_model_start == RewardModelStart.LAST_REWARD_MODEL:
            start = kept_reward_model(iteration, guideline) or start
        config = version.helpfulness_config if guideline == "helpfulness" else version.safety_config
        step.run = _launch(step, recipe=Recipe.REWARD_MODEL, config_name=config, overrides=version.reward_model_overrides,
                           base_checkpoint=start, data=reward_model_data(iteration, guideline))
        return StepState.RUNNING
    if kind in GATE_STEPS.values():
        guideline = _guideline_of(kind)
        new = _step_run(iteration, REWARD_MODEL_STEPS[guideline]).checkpoint
        old = kept_reward_model(iteration, guideline)
        if old is None:
            setattr(iteration, KEPT_FIELD[guideline], new)
            step.result = {"kept": new.name, "reason": f"No earlier {guideline} reward model: {new.name} is used."}
            return StepState.SKIPPED
        step.run = _launch(step, recipe=Recipe.EVALUATE_REWARD_MODEL, config_name="evaluate_reward_model.yaml",
                           overrides=version.reward_model_evaluation_overrides, base_checkpoint=new, compare_with=[old],
                           data=batch_sources(iteration, guideline))
        step.result = {"new": new.name, "old": old.name}
        return StepState.RUNNING
    if kind == StepKind.REJECTION_SAMPLING:
        pools = list(TrainingRun.objects.filter(
            loop_steps__iteration__definition=iteration.definition, loop_steps__iteration__number__lt=iteration.number,
            loop_steps__kind=StepKind.REJECTION_SAMPLING, status=RunStatus.SUCCEEDED,
        ).distinct().order_by("pk"))
        pools = [run for run in pools if artifacts.pool_path(run)]
        step.run = _launch(step, recipe=Recipe.REJECTION_SAMPLING, config_name=version.rejection_sampling_config,
                           overrides=version.rejection_sampling_overrides, base_checkpoint=iteration.baseline_checkpoint,
                           data=batch_sources(iteration), previous_pools=pools, **_reward_models(iteration))
        step.result = {"pooled_with_runs": [run.pk for run in pools]}
        return StepState.RUNNING
    if kind == StepKind.PPO:
        start = _step_run(iteration, StepKind.REJECTION_SAMPLING).checkpoint
        step.run = _launch(step, recipe=Recipe.PPO, config_name=version.ppo_config, overrides=version.ppo_overrides,
                           base_checkpoint=start, data=batch_sources(iteration), **_reward_models(iteration))
        return StepState.RUNNING
    if kind == StepKind.EVALUATION:
        iteration.policy_checkpoint = _policy(iteration)
        step.run = _launch(step, recipe=Recipe.EVALUATE_POLICY, config_name=version.evaluation_config,
                           overrides=version.evaluation_overrides, base_checkpoint=iteration.policy_checkpoint,
                           compare_with=[iteration.baseline_checkpoint], data=batch_sources(iteration),
                           **_reward_models(iteration))
        return StepState.RUNNING
    if kind == StepKind.POLICY_GATE:
        return _policy_gate(step)
    if kind == StepKind.CANARY:
        return _canary_start(step)
    raise StepRefused(f"Unknown step {kind}.")


def step_finish(step: LoopStep) -> str:
    """The step's run succeeded: read what it decided."""
    if step.kind in GATE_STEPS.values():
        return _reward_model_gate(step)
    if step.run.checkpoint is not None:
        step.result = {**step.result, "checkpoint": step.run.checkpoint.name}
    return StepState.SUCCEEDED


def _reward_model_gate(step: LoopStep) -> str:
    """§3.2.2's Table 7 per split: refuse the new reward model when it is worse than the one it
    would replace by more than the threshold on any held-out split (the newest or an earlier one)."""
    iteration, guideline = step.iteration, _guideline_of(step.kind)
    evaluation = artifacts.eval_results(step.run) or {}
    models = evaluation.get("models") or {}
    new_label, old_label = step.result["new"], step.result["old"]
    if new_label not in models or old_label not in models:
        raise StepRefused(f"Run {step.run.pk} wrote no accuracy for {new_label} and {old_label} (eval.json).")
    threshold = iteration.version.reward_model_max_drop
    splits, worst = {}, None
    for name, new_split in models[new_label]["splits"].items():
        old_split = models[old_label]["splits"].get(name) or {}
        new_accuracy, old_accuracy = new_split.get("accuracy"), old_split.get("accuracy")
        drop = old_accuracy - new_accuracy if new_accuracy is not None and old_accuracy is not None else None
        splits[name] = {"new": new_accuracy, "old": old_accuracy, "drop": drop, "pairs": new_split.get("pairs")}
        if drop is not None and (worst is None or drop > worst[1]):
            worst = (name, drop)
    keep_new = worst is None or worst[1] <= threshold
    new = _step_run(iteration, REWARD_MODEL_STEPS[guideline]).checkpoint
    kept = new if keep_new else kept_reward_model(iteration, guideline)
    setattr(iteration, KEPT_FIELD[guideline], kept)
    if keep_new:
        reason = f"{new_label} is kept: on no held-out split is its accuracy below {old_label}'s by more than {threshold:+.1%}."
    else:
        split = splits[worst[0]]
        reason = (f"{new_label} is not used: on {worst[0]} its accuracy is {split['new']:.1%} against {split['old']:.1%} "
                  f"for {old_label}, a drop of {worst[1]:+.1%} where at most {threshold:+.1%} is allowed; "
                  f"{old_label} stays in use.")
    step.result = {**step.result, "splits": splits, "threshold": threshold, "kept": kept.name, "passed": keep_new,
                   "reason": reason}
    return StepState.SUCCEEDED


def _policy_gate(step: LoopStep) -> str:
    """Win rate of the new policy against the deployed one by the combined reward, and the share of
    safety-prompt answers the safety model scores below the threshold (eq. 3), from the evaluation."""
    from training.evaluate_policy import ALL

    iteration, version = step.iteration, step.iteration.version
    run = _step_run(iteration, StepKind.EVALUATION)
    evaluation = artifacts.eval_results(run) or {}
    new, old = iteration.policy_checkpoint.name, iteration.baseline_checkpoint.name
    row = next((r for r in evaluation.get("pairs") or [] if r["a"] == new and r["b"] == old and r["guideline"] == ALL), None)
    if row is None:
        raise StepRefused(f"Evaluation run {run.pk} has no row {new} vs {old} (eval.json).")
    win_rate = row["combined"]["win_rate"]
    per_version = evaluation.get("per_version") or {}
    unsafe = {label: (per_version.get(label) or {}).get("safety", {}).get("unsafe_share") for label in (new, old)}
    rise = unsafe[new] - unsafe[old] if unsafe[new] is not None and unsafe[old] is not None else None
    wins_enough = win_rate is not None and win_rate >= version.min_win_rate
    safe_enough = rise is None or rise <= version.max_unsafe_share_rise
    reasons = []
    if not wins_enough:
        reasons.append(f"win rate {win_rate:.1%} by the combined reward is below the {version.min_win_rate:.1%} required")
    if not safe_enough:
        reasons.append(f"the share of safety answers below the safety threshold rose from {unsafe[old]:.1%} to "
                       f"{unsafe[new]:.1%} (at most +{version.max_unsafe_share_rise:.1%} allowed)")
    step.result = {
        "win_rate": win_rate, "min_win_rate": version.min_win_rate, "wins": row["combined"]["wins"],
        "ties": row["combined"]["ties"], "losses": row["combined"]["losses"], "unsafe_share_new": unsafe[new],
        "unsafe_share_deployed": unsafe[old], "unsafe_share_rise": rise, "max_unsafe_share_rise": version.max_unsafe_share_rise,
        "passed": not reasons,
        "reason": ("; ".join(reasons) if reasons else
                   f"win rate {win_rate:.1%} >= {version.min_win_rate:.1%} and no rise in unsafe answers beyond the allowance")
                  + (" (no safety prompts were evaluated)" if rise is None else ""),
    }
    if reasons:
        iteration.state = IterationState.REJECTED
        iteration.outcome = f"Stopped by the policy gate: {'; '.join(reasons)}. {new} is not deployed."
    return StepState.SUCCEEDED


def _canary_start(step: LoopStep) -> str:
    from annotation_site.generation.canary import canary_start

    iteration, version = step.iteration, step.iteration.version
    if iteration.baseline_deployment is None:
        raise StepRefused("No deployment served the deployed policy when the iteration started: nothing to pair the canary against.")
    canary = canary_start(checkpoint=iteration.policy_checkpoint, baseline=iteration.baseline_deployment,
                          share=version.canary_share, min_votes=version.canary_min_votes,
                          min_win_rate=version.canary_min_win_rate)
    iteration.canary_deployment = canary
    iteration.state = IterationState.CANARY
    step.result = {"deployment": canary.pk, "share": version.canary_share, "min_votes": version.canary_min_votes,
                   "min_win_rate": version.canary_min_win_rate}
    return StepState.RUNNING


def canary_check(step: LoopStep) -> str:
    """While the canary collects votes: promote or roll back once the leaderboard has enough. (The
    generation app's beat task may have decided it first; its decision is then recorded as is.)"""
    from annotation_site.generation.canary import PROMOTE, canary_decide, canary_promote, canary_rollback, canary_tally
    from annotation_site.generation.models import CanaryState

    canary = _canary(step)
    step.result = {**step.result, "tally": canary_tally(canary=canary).as_dict()}
    decision = canary_decide(canary=canary)
    if decision is None:
        return StepState.RUNNING
    if canary.canary_state == CanaryState.RUNNING:
        if decision.decision == PROMOTE:
            canary_promote(canary=canary, reason=decision.reason)
        else:
            canary_rollback(canary=canary, reason=decision.reason)
    return _canary_decided(step, decision)


def canary_decide_by_hand(step: LoopStep, *, decision: str, reason: str, actor) -> str:
    """A researcher promotes or rolls back the running canary now, whatever its votes say; the
    step ends as for the votes' decision, recording who decided and why. Raises `Conflict` when the
    canary was decided already (by its votes, beat, or another click)."""
    from annotation_site.generation.canary import PROMOTE, ROLLBACK, canary_decide, canary_promote, canary_rollback

    if decision not in (PROMOTE, ROLLBACK):
        raise ApplicationError(f'Unknown canary decision "{decision}": {PROMOTE} or {ROLLBACK}.')
    who = actor.username
    decide = canary_promote if decision == PROMOTE else canary_rollback
    canary = decide(canary=_canary(step), reason=f"{reason} (decided by hand by {who})", actor=actor)
    return _canary_decided(step, canary_decide(canary=canary), decided_by=who)


def _canary(step: LoopStep):
    canary = step.iteration.canary_deployment
    if canary is None:
        raise StepRefused("The canary's deployment was deleted before its votes decided it.")
    return canary


def _canary_decided(step: LoopStep, decision, *, decided_by: str = "") -> str:
    """Record the canary's decision on the step and end the iteration with it (promoted, or rolled
    back with the reason); `decided_by` names the person who decided by hand (empty: the votes)."""
    from annotation_site.generation.canary import PROMOTE

    iteration = step.iteration
    step.result = {**step.result, "tally": decision.tally.as_dict(), "decision": decision.decision, "reason": decision.reason,
                   "manual": bool(decided_by), "decided_by": decided_by}
    promoted = decision.decision == PROMOTE
    iteration.state = IterationState.PROMOTED if promoted else IterationState.ROLLED_BACK
    iteration.outcome = f"{iteration.policy_checkpoint.name} was {'promoted' if promoted else 'rolled back'}: {decision.reason}"
    return StepState.SUCCEEDED
