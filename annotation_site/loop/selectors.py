"""Reads of the loop: definitions with their versions, iterations with their steps, and the latest
outcomes for the dashboard."""
from __future__ import annotations

from django.db.models import QuerySet

from annotation_site.errors import NotFound
from annotation_site.loop.models import LoopDefinition, LoopIteration, LoopStep, LoopVersion
from annotation_site.loop.services import steps


def definition_list() -> QuerySet[LoopDefinition]:
    return LoopDefinition.objects.prefetch_related("versions").order_by("name")


def definition_get(definition_id: int) -> LoopDefinition:
    definition = LoopDefinition.objects.filter(pk=definition_id).first()
    if definition is None:
        raise NotFound(f"There is no loop definition {definition_id}.")
    return definition


def version_list(definition: LoopDefinition) -> QuerySet[LoopVersion]:
    return definition.versions.select_related("created_by", "chat_checkpoint").order_by("-number")


def iteration_list() -> QuerySet[LoopIteration]:
    return LoopIteration.objects.select_related("definition", "version", "batch", "policy_checkpoint", "baseline_checkpoint")


def iteration_get(iteration_id: int) -> LoopIteration:
    iteration = iteration_list().filter(pk=iteration_id).first()
    if iteration is None:
        raise NotFound(f"There is no loop iteration {iteration_id}.")
    return iteration


def iteration_steps(iteration: LoopIteration) -> QuerySet[LoopStep]:
    return iteration.steps.select_related("run", "run__checkpoint").order_by("position")


def latest_outcomes(limit: int = 5) -> QuerySet[LoopIteration]:
    """The newest iterations, for the dashboard's banner."""
    return iteration_list()[:limit]


def planned_steps(version: LoopVersion) -> list[dict]:
    """What an iteration of `version` will run, step by step, in words (the definition page)."""
    plan = []
    for kind, skipped in steps.plan(LoopIteration(version=version, definition=version.definition)):
        plan.append({"kind": kind, "label": LoopStep(kind=kind).get_kind_display(), "skipped": skipped,
                     "detail": _detail(version, kind)})
    return plan


def _detail(version: LoopVersion, kind: str) -> str:
    from annotation_site.loop.models import StepKind

    overrides = lambda lines: f" with {', '.join(lines)}" if lines else ""  # noqa: E731
    mix = lambda g: ", ".join(f"{e['source']} {e['share']:.0%}" for e in version.sources if e["reward_model"] == g)  # noqa: E731
    start = "the last reward model kept" if version.reward_model_start == "last_reward_model" else version.chat_checkpoint.name
    if kind == StepKind.REWARD_MODEL_HELPFULNESS:
        return (f"{version.helpfulness_config or 'defaults'}{overrides(version.reward_model_overrides)}, from {start}, on "
                f"every exported batch's helpfulness data{' + ' + mix('helpfulness') if mix('helpfulness') else ''}")
    if kind == StepKind.REWARD_MODEL_SAFETY:
        return (f"{version.safety_config or 'defaults'}{overrides(version.reward_model_overrides)}, from {start}, on "
                f"every exported batch's safety data{' + ' + mix('safety') if mix('safety') else ''}")
    if kind in (StepKind.GATE_HELPFULNESS, StepKind.GATE_SAFETY):
        return (f"accuracy on every held-out split vs the reward model in use; refused if worse by more than "
                f"{version.reward_model_max_drop:.1%} on any split")
    if kind == StepKind.REJECTION_SAMPLING:
        return (f"{version.rejection_sampling_config or 'defaults'}{overrides(version.rejection_sampling_overrides)}, from "
                "the deployed policy, on every batch's prompts, pooled with earlier iterations' best answers")
    if kind == StepKind.PPO:
        return f"{version.ppo_config or 'defaults'}{overrides(version.ppo_overrides)}, from the rejection-sampling checkpoint"
    if kind == StepKind.EVALUATION:
        return f"{version.evaluation_config or 'defaults'}{overrides(version.evaluation_overrides)}, new policy vs deployed"
    if kind == StepKind.POLICY_GATE:
        return (f"win rate by the combined reward >= {version.min_win_rate:.0%}, unsafe share of safety answers up by at "
                f"most {version.max_unsafe_share_rise:.1%}")
    return (f"{version.canary_share:.0%} of new pairs against the deployed policy; after {version.canary_min_votes} votes, "
            f"promote if its win rate >= {version.canary_min_win_rate:.0%}, else roll back")
