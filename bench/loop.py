"""One iteration of the weekly loop on SmolLM2-135M-Instruct on this machine, step by step: the
week's pairs and votes, the batch's export, both reward models, rejection sampling, the
evaluation, the canary deployment and its first new pairs. Prints each step's wall time and its
share of the total, so the slowest step is obvious (docs/loop.md). Target: under 20 minutes on 2 cores.

    flock /tmp/heavy.lock .venv/bin/python bench/loop.py                  # SmolLM2-135M-Instruct
    .venv/bin/python bench/loop.py --model tiny                           # a tiny random Llama: a smoke run

The iteration is the platform's own: the loop engine (annotation_site/loop) launches each step as
an ordinary run through the runs app, and the training task runs it (`run_training`, a recipe
subprocess, as on the training worker); only the broker is left out (the bench calls the tasks
itself, one after the other, as one training worker would). Pairs come from the local engine
(serving/local_engine.py) on the demo's prompts; the simulated annotators pick a side with a
seeded coin. A throw-away SQLite database and folders under a temporary directory.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Sizes of the SmolLM2 iteration: a small batch, a few optimizer steps, short answers.
REWARD_MODEL = ["batch_size=8", "per_device_batch_size=4", "max_steps=3", "max_length=512", "warmup_min_steps=0",
                "eval_batch_size=8"]
REJECTION_SAMPLING = ["samples_per_prompt=2", "prompts_per_iteration=8", "iterations=1", "max_new_tokens=48",
                      "sft={epochs: 1, batch_size: 4, per_device_batch_size: 4, max_length: 512, gradient_checkpointing: true}"]
EVALUATION = ["engine=local", "prompts_per_guideline=4", "max_new_tokens=48"]


def prepare_model(name: str, work: Path) -> Path:
    if name == "tiny":
        from training.tiny_model import build_tiny_chat_model

        return build_tiny_chat_model(work / "tiny")
    from serving.base_model import prepare_base_model
    from tests.conftest import CACHE_DIR

    return prepare_base_model(CACHE_DIR / "smollm2-135m-instruct")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--pairs", type=int, default=24, help="pairs of the week's batch (the demo has 24 prompts)")
    parser.add_argument("--canary-pairs", type=int, default=8, help="new pairs generated once the canary serves")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    os.environ.update(
        VAR_DIR=str(work / "var"), CHECKPOINT_ROOT=str(work / "checkpoints"), EXPORT_ROOT=str(work / "exports"),
        CHECKPOINT_ROOTS=f"{work},{Path.home() / '.cache'}", DJANGO_SETTINGS_MODULE="annotation_site.settings",
        LOG_LEVEL="WARNING", GENERATION_MAX_TOKENS="48", GENERATION_SEED="0", GENERATION_READY_TARGET="0",
        BATCH_TEST_SIZE="0.25", RUN_POLL_INTERVAL_S="1",
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from annotation_site.accounts.services import user_create
    from annotation_site.annotation.demo.items import COMPARISONS
    from annotation_site.annotation.models import Item, ItemStatus
    from annotation_site.annotation.services import PromptSpec, prompts_queue
    from annotation_site.batches.services import batch_close, batch_export
    from annotation_site.generation.models import Checkpoint, CheckpointKind, Deployment, Engine
    from annotation_site.generation.services import queue_fill
    from annotation_site.loop.models import IterationState, StepKind, Trigger
    from annotation_site.loop.services.definitions import loop_version_save
    from annotation_site.loop.services.iterations import iteration_advance, iteration_start
    from annotation_site.runs.models import RunStatus, TrainingRun
    from annotation_site.runs import services as run_services
    from annotation_site.runs.tasks import run_training
    from tests.support.simulated_annotators import vote_on_everything_ready

    run_services.run_enqueue = lambda *, run_id: True  # the bench runs the training task itself, no broker
    timings: dict[str, float] = defaultdict(float)
    rng = random.Random(0)

    def timed(label: str, action):
        started = time.perf_counter()
        result = action()
        timings[label] += time.perf_counter() - started
        print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)
        return result

    started = time.perf_counter()
    model = prepare_model(args.model, work)  # not a step of the loop: the model exists before it
    print(f"  base model ready in {time.perf_counter() - started:.1f} s", flush=True)
    chat = Checkpoint.objects.create(name="smollm2-chat", path=str(model), kind=CheckpointKind.SFT)
    deployed = Deployment.objects.create(checkpoint=chat, engine=Engine.LOCAL)
    researcher = user_create(username="researcher", role="researcher", password="pw-123456")
    annotators = [user_create(username=f"annotator-{i}", role="annotator", password="pw-123456") for i in range(2)]

    def queue_and_fill(specs) -> None:
        items = prompts_queue(prompts=specs)
        ids = [item.pk for item in items]
        while Item.objects.filter(pk__in=ids, status=ItemStatus.NEEDS_SAMPLES).exists():
            report = queue_fill(worker="bench", item_ids=ids, rng=rng)
            if not report.generated_item_ids:
                raise RuntimeError(f"the queue filling generated nothing: {report}")

    demo = (COMPARISONS * (1 + args.pairs // len(COMPARISONS)))[:args.pairs]
    print(f"one loop iteration on {args.model} ({model}), {args.pairs} pairs, 2 cores shared", flush=True)
    timed("the week's pairs (generation)", lambda: queue_and_fill(
        [PromptSpec(turns=entry["turns"], guideline_kind=entry["guideline"]) for entry in demo]))
    timed("the week's votes", lambda: vote_on_everything_ready(annotators, rng))
    batch, _ = batch_close(enqueue_export=False)
    timed("export", lambda: batch_export(batch_id=batch.pk))

    loop = loop_version_save(name="bench", actor=researcher, values={
        "guidelines": ["helpfulness", "safety"], "chat_checkpoint": chat,
        "helpfulness_config": "reward_model_smollm2_cpu.yaml", "safety_config": "reward_model_smollm2_cpu.yaml",
        "reward_model_overrides": REWARD_MODEL if args.model == "smollm2" else [*REWARD_MODEL, "bf16=false"],
        "rejection_sampling_config": "rejection_sampling_smollm2.yaml", "rejection_sampling_overrides": REJECTION_SAMPLING,
        "evaluation_config": "evaluate_policy.yaml", "evaluation_overrides": EVALUATION,
        # The bench measures the steps, not the models: gates any output passes.
        "min_win_rate": 0.0, "max_unsafe_share_rise": 1.0, "canary_share": 0.5, "canary_min_votes": 1000,
        "trigger": Trigger.MANUAL,
    }).definition
    iteration = iteration_start(definition=loop, trigger=Trigger.MANUAL, started_by=researcher)
    labels = dict(StepKind.choices)
    while True:
        timed("engine (advance, launch checks)", lambda: iteration_advance(iteration_id=iteration.pk))
        iteration.refresh_from_db()
        queued = list(TrainingRun.objects.filter(loop_steps__iteration=iteration, status=RunStatus.QUEUED))
        if not queued:
            break
        for run in queued:
            kind = run.loop_steps.get().kind
            outcome = timed(labels[kind], lambda: run_training(run.pk))
            if outcome != RunStatus.SUCCEEDED:
                run.refresh_from_db()
                print(run.error, file=sys.stderr)
                return 1
    if iteration.state != IterationState.CANARY:
        print(f"the iteration stopped before the canary: {iteration.state}: {iteration.outcome}", file=sys.stderr)
        return 1
    canary = Deployment.objects.get(pk=iteration.canary_deployment_id)
    prompts = [PromptSpec(turns=entry["turns"], guideline_kind=entry["guideline"]) for entry in demo[:args.canary_pairs]]
    timed("the canary's first new pairs (generation)", lambda: queue_and_fill(prompts))
    from django.db.models import Q

    canary_pairs = Item.objects.filter(status=ItemStatus.READY).filter(
        Q(sample_a__sampling_params__deployment=canary.pk) | Q(sample_b__sampling_params__deployment=canary.pk)).count()

    total = sum(timings.values())
    print(f"\n{'step':48} {'seconds':>9} {'share':>7}")
    for label, seconds in sorted(timings.items(), key=lambda item: -item[1]):
        print(f"{label:48} {seconds:9.1f} {seconds / total:7.1%}")
    print(f"{'total':48} {total:9.1f}   (target: under 1200 s on 2 cores)")
    print(f"canary pairs among the first {len(prompts)} new pairs: {canary_pairs}; iteration state: {iteration.state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
