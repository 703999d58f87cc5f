"""Filling the annotation queue: claiming items that need samples, generating their two samples
on the enabled deployments, and storing each pair (or releasing the claim)."""
from __future__ import annotations

import datetime as dt
import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from annotation_site.annotation.models import GuidelineKind, Item, ItemStatus, Sample
from annotation_site.annotation.selectors import items_needing_samples, ready_item_count
from annotation_site.annotation.services import item_attach_samples
from annotation_site.errors import ApplicationError, ServiceUnavailable
from annotation_site.generation import selectors
from annotation_site.generation.engines import engine_for
from annotation_site.generation.models import ClaimState, Deployment, Engine, GenerationClaim
from annotation_site.generation.policy import SamplingPolicy
from annotation_site.generation.selection import RANDOM, SelectionSettings
from annotation_site.generation.services.deployments import deployment_record_failure, deployment_record_success
from serving.types import Completion, RequestRejected, ServingError

logger = logging.getLogger(__name__)


class GenerationFailed(Exception):
    """A deployment failed while generating; the fill task retries with backoff."""

    def __init__(self, message: str, report: "FillReport"):
        super().__init__(message)
        self.report = report


@dataclass
class FillReport:
    generated_item_ids: list[int] = field(default_factory=list)
    # Items left waiting after a deployment failed; they are claimable again at once.
    released_item_ids: list[int] = field(default_factory=list)
    # Items whose own request the server refused too often; they stay out of the queue.
    failed_item_ids: list[int] = field(default_factory=list)
    # How many more READY items each guideline wants than there are prompts waiting (the pool is
    # filled by imports and annotators; the generator never invents prompts).
    short_of_prompts: dict[str, int] = field(default_factory=dict)
    no_deployment: bool = False
    errors: list[str] = field(default_factory=list)
    # Items whose K candidates wait for the reward models' choice (active selection, training worker).
    selecting_item_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "generated": len(self.generated_item_ids),
            "generated_item_ids": self.generated_item_ids,
            "released_item_ids": self.released_item_ids,
            "failed_item_ids": self.failed_item_ids,
            "short_of_prompts": self.short_of_prompts,
            "no_deployment": self.no_deployment,
            "errors": self.errors,
            "selecting_item_ids": self.selecting_item_ids,
        }


def _live_claims(now):
    return GenerationClaim.objects.filter(state=ClaimState.GENERATING, expires_at__gte=now)


def queue_fill_enqueue() -> str:
    """Ask a worker to fill the annotation queue now; returns the task's id.

    With the broker down nothing is started (503, try again): the beat fills the queue anyway.
    """
    from annotation_site.generation.tasks import fill_queue

    try:
        return fill_queue.delay().id
    except (BrokerError, OSError) as error:
        logger.warning("could not enqueue a queue fill: %s", error)
        raise ServiceUnavailable(
            "The task queue cannot be reached, so no fill was started: try again in a minute "
            "(the beat also fills the queue every GENERATION_FILL_INTERVAL_S seconds once it is back)."
        ) from None


def items_claim_for_generation(*, worker: str, limit: int, item_ids: list[int] | None = None) -> list[Item]:
    """Claim up to `limit` items that need samples: the named items first (a prompt an annotator just
    wrote), then, per guideline, as many as it is short of its READY target, most urgent first.

    A claim is a row insert that the one-to-one constraint lets only one worker win, or, for a
    claim whose worker died or that was released, a conditional update of the expired row (which
    keeps its attempt count); so any number of workers can run this at once on SQLite or PostgreSQL.
    """
    now = timezone.now()
    taken = GenerationClaim.objects.filter(Q(state=ClaimState.FAILED) | Q(expires_at__gte=now)).values("item_id")
    claimable = items_needing_samples().exclude(pk__in=taken).select_related("dialogue")
    candidates: list[Item] = []
    if item_ids:
        candidates += list(claimable.filter(pk__in=item_ids)[:limit])
    for kind in GuidelineKind.values:
        in_flight = _live_claims(now).filter(item__guideline_kind=kind, item__status=ItemStatus.NEEDS_SAMPLES).count()
        wanted = settings.GENERATION_READY_TARGET - ready_item_count(guideline_kind=kind) - in_flight
        if wanted > 0:
            candidates += list(claimable.filter(guideline_kind=kind).exclude(pk__in=item_ids or [])[:wanted])
    candidates.sort(key=lambda item: (-item.priority, item.pk))
    expires_at = now + dt.timedelta(seconds=settings.GENERATION_CLAIM_TTL_S)
    claimed: list[Item] = []
    for item in candidates:
        if len(claimed) >= limit or item in claimed:
            continue
        retaken = GenerationClaim.objects.filter(
            item=item, state=ClaimState.GENERATING, expires_at__lt=now
        ).update(worker=worker, claimed_at=now, expires_at=expires_at)
        if not retaken:
            try:
                with transaction.atomic():
                    GenerationClaim.objects.create(item=item, worker=worker, claimed_at=now, expires_at=expires_at)
            except IntegrityError:
                continue  # another worker claimed it first
        claimed.append(item)
    return claimed


def _claim_release(item: Item) -> None:
    """Make a claimed item claimable again at once (its attempt count is kept)."""
    GenerationClaim.objects.filter(item=item, state=ClaimState.GENERATING).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )


def _short_of_prompts() -> dict[str, int]:
    short = {}
    for kind in GuidelineKind.values:
        wanted = settings.GENERATION_READY_TARGET - ready_item_count(guideline_kind=kind)
        # Waiting items, claimed or not, count towards the target; failed ones never get samples.
        waiting = items_needing_samples(guideline_kind=kind).exclude(generation_claim__state=ClaimState.FAILED).count()
        if wanted - waiting > 0:
            short[kind] = wanted - waiting
    return short


@dataclass
class _Request:
    """One (deployment, temperature) variant, and the items whose pair it answers one side of."""

    deployment: Deployment
    temperature: float
    items: list[tuple[Item, str]] = field(default_factory=list)  # (item, side): "a" | "b", or a candidate's index


def queue_fill(*, worker: str, item_ids: list[int] | None = None, rng: random.Random | None = None) -> FillReport:
    """Generate the two samples of waiting items and make them READY (Llama 2 §3.2.1 sampling).

    Items are claimed first, then answered with one batched request per (deployment, temperature)
    variant. With active selection on for an item's guideline (generation/selection.py), items
    outside the random share get K candidates instead, which wait on their claim for the training
    worker's `select_pairs` (`pairs_select`) to choose and store the pair. Each item's two samples and its READY state are stored in one transaction: an item
    either gets both samples or none. Items a failing deployment could not answer are released at
    once; the failure is counted against the deployment, and `GenerationFailed` is raised so the
    task retries with backoff (by then an unhealthy deployment is left out).
    """
    rng = rng or random.Random(settings.GENERATION_SEED)
    policy = SamplingPolicy.from_settings()
    report = FillReport()
    deployments = selectors.deployments_for_generation()
    if not deployments:
        report.no_deployment = True
        report.short_of_prompts = _short_of_prompts()
        logger.warning("no healthy, enabled deployment to generate samples with; register and deploy a checkpoint")
        return report
    items = items_claim_for_generation(worker=worker, limit=settings.GENERATION_BATCH_ITEMS, item_ids=item_ids)
    report.short_of_prompts = _short_of_prompts()
    if not items:
        return report

    try:
        return _generate_pairs(items, deployments, policy, rng, report)
    except GenerationFailed:
        raise
    except Exception:
        # An unexpected crash must not leave items claimed until their TTL: release what is not stored.
        for item in items:
            if item.pk not in report.generated_item_ids and item.pk not in report.selecting_item_ids:
                _claim_release(item)
        raise


def _generate_pairs(items, deployments, policy: SamplingPolicy, rng: random.Random, report: FillReport) -> FillReport:
    selection = SelectionSettings.from_settings()
    # Claims taken over with candidates the reward models never chose from (their worker busy or
    # down for SELECTION_WAIT_S): a random pair of those candidates is queued, nothing regenerated.
    stashed = dict(GenerationClaim.objects.filter(item__in=items).exclude(selection={}).values_list("item_id", "selection"))
    requests: dict[tuple[int, float], _Request] = {}
    records: dict[int, dict] = {}  # item -> its selection record, where selection is on for its guideline
    candidates: dict[int, int] = {}  # item -> how many candidates it waits for (active selection)
    for item in items:
        if item.pk in stashed:
            continue
        asked = selection.policy_for(item.guideline_kind)
        active = asked != RANDOM and rng.random() >= selection.random_share
        variants = policy.choose_variants(deployments, rng, k=selection.candidates if active else 2)
        if active and len(variants) > 2:
            candidates[item.pk] = len(variants)
            sides = [str(index) for index in range(len(variants))]
        else:
            sides = ["a", "b"]
            if asked != RANDOM:
                records[item.pk] = {"policy": RANDOM, "asked": asked, "note": (
                    "two variants only: a canary's pair, or too few deployed" if active else "the random share")}
        for side, (deployment, temperature) in zip(sides, variants):
            key = (deployment.pk, temperature)
            requests.setdefault(key, _Request(deployment, temperature)).items.append((item, side))

    answers: dict[int, dict[str, tuple[Deployment, Completion]]] = defaultdict(dict)
    rejected: dict[int, str] = {}
    failed_deployments: set[int] = set()
    for request in requests.values():
        if request.deployment.pk in failed_deployments:
            continue
        params = policy.params(request.temperature, seed=rng.randrange(2**31))
        ok = _answer(request, params, answers, rejected, report)
        if not ok:
            failed_deployments.add(request.deployment.pk)

    for item in items:
        answered = answers.get(item.pk, {})
        if item.pk in stashed:
            stored = _store_random_candidates(item=item, stash=stashed[item.pk], rng=rng)
            (report.generated_item_ids if stored else report.released_item_ids).append(item.pk)
        elif item.pk in rejected:
            _claim_record_rejection(item=item, error=rejected[item.pk], report=report)
        elif item.pk in candidates and len(answered) == candidates[item.pk]:
            _stash_candidates(item=item, asked=selection.policy_for(item.guideline_kind),
                              answered=[answered[str(index)] for index in range(candidates[item.pk])])
            report.selecting_item_ids.append(item.pk)
        elif item.pk not in candidates and len(answered) == 2 and store_samples(
                item=item, sides=[sample_fields(*answered["a"]), sample_fields(*answered["b"])], rng=rng,
                selection=records.get(item.pk, {})):
            report.generated_item_ids.append(item.pk)
        else:
            _claim_release(item)
            report.released_item_ids.append(item.pk)
    if report.selecting_item_ids:
        _enqueue_selection(report.selecting_item_ids)
    logger.info(
        "queue fill: %d items ready, %d waiting for selection, %d released, %d failed",
        len(report.generated_item_ids), len(report.selecting_item_ids), len(report.released_item_ids),
        len(report.failed_item_ids),
    )
    if failed_deployments:
        raise GenerationFailed("; ".join(report.errors), report)
    return report


def _stash_candidates(*, item: Item, asked: str, answered: list[tuple[Deployment, Completion]]) -> None:
    """Keep an item's K candidates on its claim until the training worker chooses the pair."""
    GenerationClaim.objects.filter(item=item).update(
        selection={"policy": asked, "candidates": [sample_fields(d, c) for d, c in answered]},
        expires_at=timezone.now() + dt.timedelta(seconds=settings.SELECTION_WAIT_S),
    )


def _enqueue_selection(item_ids: list[int]) -> None:
    from annotation_site.generation.tasks import select_pairs

    def enqueue():
        try:
            select_pairs.delay(list(item_ids))
        except Exception:  # noqa: BLE001 - the claims expire and a later fill queues a random pair of the candidates
            logger.exception("could not enqueue the selection of items %s", item_ids)

    transaction.on_commit(enqueue)


def _store_random_candidates(*, item: Item, stash: dict, rng: random.Random) -> bool:
    first, second = rng.sample(range(len(stash["candidates"])), 2)
    record = {"policy": RANDOM, "asked": stash["policy"], "candidates": candidates_record(stash["candidates"]),
              "chosen": [first, second],
              "note": f"the reward models did not choose within SELECTION_WAIT_S ({settings.SELECTION_WAIT_S} s)"}
    return store_samples(item=item, sides=[stash["candidates"][first], stash["candidates"][second]], rng=rng,
                         selection=record)


def _answer(request: _Request, params, answers, rejected, report: FillReport) -> bool:
    """Send one variant's batch; False when the deployment failed (its items stay unanswered)."""
    deployment = request.deployment
    conversations = [item.dialogue.turns for item, _ in request.items]
    try:
        engine = engine_for(deployment)
    except (ServingError, OSError, ValueError) as error:  # e.g. a local checkpoint that fails to load
        return _deployment_failed(deployment, error, report)
    try:
        completions = engine.chat(conversations, params)
    except (RequestRejected, ValueError):
        # Some conversation of the batch is refused (e.g. longer than the server's context, or
        # not a chat ending with a user turn): ask one by one so only that item is held back.
        return _answer_one_by_one(engine, request, params, answers, rejected, report)
    except ServingError as error:
        return _deployment_failed(deployment, error, report)
    finally:
        if deployment.engine == Engine.VLLM:
            engine.close()
    # An empty or whitespace-only answer (serving's verdict) fails the request: the items are
    # released and retried, and the deployment that wrote it is counted against.
    empty = 0
    for (item, side), (completion,) in zip(request.items, completions):
        if completion.usable:
            answers[item.pk][side] = (deployment, completion)
        else:
            empty += 1
    if empty:
        error = ServingError(f"{empty} of {len(request.items)} answers were empty")
        return _deployment_failed(deployment, error, report)
    deployment_record_success(deployment_id=deployment.pk)
    return True


def _answer_one_by_one(engine, request: _Request, params, answers, rejected, report: FillReport) -> bool:
    for item, side in request.items:
        try:
            (completion,) = engine.chat([item.dialogue.turns], params)[0]
        except (RequestRejected, ValueError) as error:  # ValueError: turns that are not a chat
            rejected[item.pk] = str(error)
            continue
        except ServingError as error:
            return _deployment_failed(request.deployment, error, report)
        if completion.usable:
            answers[item.pk][side] = (request.deployment, completion)
    deployment_record_success(deployment_id=request.deployment.pk)
    return True


def _deployment_failed(deployment: Deployment, error: Exception, report: FillReport) -> bool:
    message = f"{deployment.checkpoint.name} ({deployment.engine} {deployment.endpoint_url}): {type(error).__name__}: {error}"
    report.errors.append(message)
    deployment_record_failure(deployment_id=deployment.pk, error=message)
    return False


def candidates_record(candidates: list[dict], scores: list[dict] | None = None) -> list[dict]:
    """Each candidate as an item's selection record lists it: its variant, and its scores when scored."""
    return [{"deployment": fields["sampling_params"]["deployment"], "temperature": fields["sampling_params"]["temperature"],
             **(scores[index] if scores else {})} for index, fields in enumerate(candidates)]


def sample_fields(deployment: Deployment, completion: Completion) -> dict:
    """A generated answer as the fields of its `Sample` (JSON-able: candidates wait on their claim)."""
    return {
        "text": completion.text,
        "model_name": deployment.checkpoint.name,
        "checkpoint_id": deployment.checkpoint_id,
        "sampling_params": {**completion.sampling_record(), "deployment": deployment.pk},
        "finish_reason": completion.finish_reason,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "latency_ms": completion.latency_ms,
        "cleaned_chars": completion.cleaned_chars,
    }


def store_samples(*, item: Item, sides: list[dict], rng: random.Random, selection: dict) -> bool:
    """Store both samples (`sample_fields`) and make the item READY, all or nothing, with how the
    pair was selected. False if the item moved on (retired by an admin, or generated by a worker
    that took over an expired claim)."""
    sides = list(sides)
    # Which variant is "sample A" carries no meaning; annotators see a per-assignment random order too.
    rng.shuffle(sides)
    try:
        with transaction.atomic():
            samples = [Sample.objects.create(dialogue=item.dialogue, **fields) for fields in sides]
            item_attach_samples(item=item, sample_a=samples[0], sample_b=samples[1])
            if selection:
                Item.objects.filter(pk=item.pk).update(selection=selection)
            GenerationClaim.objects.filter(item=item).delete()
    except ApplicationError as error:
        logger.info("item %s not stored: %s", item.pk, error)
        GenerationClaim.objects.filter(item=item).delete()
        return False
    return True


def _claim_record_rejection(*, item: Item, error: str, report: FillReport) -> None:
    claim = GenerationClaim.objects.get(item=item)
    claim.attempts += 1
    claim.last_error = error[:5000]
    if claim.attempts >= settings.GENERATION_ITEM_MAX_ATTEMPTS:
        claim.state = ClaimState.FAILED
        report.failed_item_ids.append(item.pk)
    else:
        # Claimable again on a later run (the server may have been reconfigured meanwhile).
        claim.expires_at = timezone.now() - dt.timedelta(seconds=1)
        report.released_item_ids.append(item.pk)
    claim.save()


def claim_retry(*, claim: GenerationClaim) -> None:
    """Put a failed item back in the queue (admin action, after fixing what the error said)."""
    GenerationClaim.objects.filter(pk=claim.pk).delete()
