"""What the dashboard adds to a training run: wall time of the SFT recipe run by the training task
(`runs.services.run_execute`: resolved config, subprocess, progress polling, checkpoint
registration) against the same recipe started by hand (`python -m training.sft --config X`), and
how long the web process takes to check a launch (cold: first import of the recipe, warm: later).

Both variants train the tiny random Llama on the same synthetic batch with the same config, each
in its own process, alternating over the repeats. Target: the task adds no more than 5% (or one
polling interval, RUN_POLL_INTERVAL_S, on runs this short).

    python bench/runs.py [--steps 20] [--repeats 3]
    python bench/runs.py --threads 1 --repeats 5     # on a busy machine: compare CPU time

It uses a throw-away SQLite database and folders under a temporary directory.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps of each run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads of each recipe (OMP_NUM_THREADS); 1 on a busy machine")
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)

    work = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    os.environ.update(
        VAR_DIR=str(work / "var"), CHECKPOINT_ROOT=str(work / "checkpoints"), EXPORT_ROOT=str(work / "exports"),
        DJANGO_SETTINGS_MODULE="annotation_site.settings", LOG_LEVEL="WARNING",
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from annotation_site.batches.models import Batch, BatchState
    from annotation_site.generation.models import Checkpoint
    from annotation_site.runs import configs, services
    from training.synthetic_batch import write_exported_batch
    from training.tiny_model import build_tiny_chat_model

    model = build_tiny_chat_model(work / "tiny")
    write_exported_batch(work / "exports" / "2026-W48", n_train=64, n_test=8, batch="2026-W48")
    batch = Batch.objects.create(week="2026-W48", state=BatchState.EXPORTED)
    base = Checkpoint.objects.create(name="tiny", path=str(model), kind="base")
    user = get_user_model().objects.create_user(username="bench")
    overrides = [
        "batch_size=4", "per_device_batch_size=4", "bf16=false", "eval_fraction=0.05", f"max_steps={args.steps}",
    ]
    services.run_enqueue = lambda *, run_id: True  # the bench runs the task itself, no broker

    def launch():
        return services.run_launch(recipe="sft", launched_by=user, overrides=overrides, base_checkpoint=base, batches=[batch])

    # Cold: a fresh web process whose first launch imports the recipe module (torch, transformers).
    check = (
        "import time, django; django.setup(); from annotation_site.runs.configs import resolve_config; "
        "t = time.perf_counter(); resolve_config(recipe='sft', config_name='', overrides=[], "
        f"platform_values={{'model': {str(model)!r}, 'data': ['x'], 'out': 'x'}}); print(time.perf_counter() - t)"
    )
    cold = float(subprocess.run([sys.executable, "-c", check], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()[-1])
    configs.resolve_config(recipe="sft", config_name="", overrides=overrides, platform_values={"model": str(model), "data": ["x"], "out": "x"})
    started = time.perf_counter()
    launch()
    warm = time.perf_counter() - started

    # Wall time, and CPU time (the recipe's process plus, for the task, this process's polling and
    # registration), which other jobs on a shared machine disturb far less than wall time.
    results: dict[str, list[tuple[float, float]]] = {"hand": [], "task": []}
    for repeat in range(args.repeats):
        for variant in (("hand", "task") if repeat % 2 == 0 else ("task", "hand")):
            run = launch()
            wall, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
            if variant == "task":
                outcome = services.run_execute(run_id=run.pk, worker=f"bench:{os.getpid()}:{repeat}")
                assert outcome == "succeeded", (outcome, type(run).objects.get(pk=run.pk).error)
            else:
                config = work / f"hand-{repeat}.yaml"
                config.write_text(run.config_text.replace(f"runs/{run.pk}/checkpoint", f"hand-{repeat}"))
                subprocess.run([sys.executable, "-m", "training.sft", "--config", str(config)], cwd=ROOT, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            results[variant].append((time.perf_counter() - wall, time.process_time() - cpu + _children_cpu() - children))
            print(f"repeat {repeat + 1} {variant}: {results[variant][-1][0]:.2f} s wall, {results[variant][-1][1]:.2f} s CPU", flush=True)

    print(f"\nSFT, tiny Llama, {args.steps} steps, median of {args.repeats}:")
    for index, unit in ((0, "wall"), (1, "CPU")):
        hand = statistics.median(row[index] for row in results["hand"])
        task = statistics.median(row[index] for row in results["task"])
        print(f"  {unit:>4}: by hand (python -m training.sft) {hand:.2f} s, by the training task (run_execute) {task:.2f} s,"
              f" ratio {task / hand:.3f} ({task - hand:+.2f} s)")
    print(f"launch in the web process: first check {cold:.2f} s (imports the recipe), later launches {warm * 1000:.0f} ms")
    return 0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main())
