"""Tokens/s of the platform's reward-model recipe against a bare TRL RewardTrainer script.

Both train the same model on the same pairs (one epoch of a synthetic batch in the exported
format), with the same batch size, max length, precision and learning-rate schedule. Each run is
a separate process so neither inherits the other's memory or threads, and the order alternates
over the repeats. Tokens/s is non-padding tokens (TRL's `num_tokens`) over the time spent inside
`Trainer.train` (wall clock, and CPU time of the process, which other jobs on a shared machine
disturb far less); the recipe's extra work outside that loop (evaluation, plots) is shown apart.
Target: the recipe costs no more than 5% of the bare script's tokens/s.

    python bench/reward_model.py                                   # tiny random Llama, built here
    python bench/reward_model.py --model ~/.cache/rlhf-loop/smollm2-135m-instruct --pairs 24 --batch 4 --gradient-checkpointing
    python bench/reward_model.py --threads 1      # on a busy machine: one thread each, compare CPU time
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def time_training_loop() -> dict:
    """Wrap `Trainer.train` (used the same way by both variants) to record its wall and CPU time."""
    import transformers

    timings: dict = {}
    original = transformers.Trainer.train

    def timed(self, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            timings["train_wall_s"] = time.perf_counter() - wall
            timings["train_cpu_s"] = time.process_time() - cpu

    transformers.Trainer.train = timed
    return timings


def bare_trl(args: argparse.Namespace, data: Path, out: Path) -> dict:
    """What a user would write with TRL alone: read the pairs, train, save."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from training.export_format import rating_margin
    from training.run_folder import precision_args

    from training.data import load_preferences, parse_sources

    # The pairs in the recipe's (seeded, shuffled) order, so both trainers form the same batches
    # with the same padding: a different order alone moves tokens/s by several percent.
    rows, _ = load_preferences(parse_sources([str(data)]), seed=42)
    dataset = Dataset.from_list(
        [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"], "margin": rating_margin(r["rating"], "small")} for r in rows]
    )
    config = RewardConfig(
        output_dir=str(out),
        num_train_epochs=1,
        learning_rate=1e-5,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": 0.1},
        warmup_steps=1,
        per_device_train_batch_size=args.batch,
        max_length=args.max_length,
        activation_checkpointing=args.gradient_checkpointing,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=42,
        **precision_args(None if args.bf16 == "auto" else args.bf16 == "true"),
    )
    timings = time_training_loop()
    started = time.perf_counter()
    trainer = RewardTrainer(model=args.model, args=config, train_dataset=dataset)
    trainer.train()
    trainer.save_model(str(out))
    return {
        **timings,
        "num_tokens": trainer._total_train_tokens,  # TRL's own non-padding token count
        "wall_s": time.perf_counter() - started,
    }


def recipe(args: argparse.Namespace, data: Path, out: Path) -> dict:
    from training import reward_model
    from training.config import load_config
    from training.run_folder import read_metrics

    overrides = [
        f"model={args.model}",
        f"data=[{data}]",
        f"out={out}",
        f"batch_size={args.batch}",
        f"per_device_batch_size={args.batch}",
        f"max_length={args.max_length}",
        f"gradient_checkpointing={str(args.gradient_checkpointing).lower()}",
        "warmup_min_steps=1",
        f"bf16={'null' if args.bf16 == 'auto' else args.bf16}",
    ]
    timings = time_training_loop()
    started = time.perf_counter()
    reward_model.train(load_config(reward_model.Config, None, overrides))
    wall = time.perf_counter() - started
    tokens = max(row.get("num_tokens", 0) for row in read_metrics(out / "metrics.jsonl"))
    return {**timings, "num_tokens": tokens, "wall_s": wall}


def run_variant(variant: str, args: argparse.Namespace, data: Path, work: Path, index: int) -> dict:
    """One measured run in a fresh process; returns its figures."""
    out = work / f"{variant}-{index}"
    command = [sys.executable, __file__, "--_variant", variant, "--_data", str(data), "--_out", str(out), *args.passthrough]
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if result.returncode != 0:
        sys.exit(f"{variant} run failed:\n{result.stderr[-4000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["tokens_per_s"] = figures["num_tokens"] / figures["train_wall_s"]
    figures["tokens_per_cpu_s"] = figures["num_tokens"] / figures["train_cpu_s"]
    print(
        f"  {variant:6s} run {index}: {figures['num_tokens']:.0f} tokens in {figures['train_wall_s']:.2f} s "
        f"-> {figures['tokens_per_s']:.1f} tokens/s, {figures['tokens_per_cpu_s']:.1f} tokens per CPU-s "
        f"(whole run {figures['wall_s']:.1f} s)",
        flush=True,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder (default: a tiny random Llama built here)")
    parser.add_argument("--pairs", type=int, default=256, help="training pairs (one epoch)")
    parser.add_argument("--batch", type=int, default=16, help="pairs per step")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--bf16", choices=["auto", "true", "false"], default="auto")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant (order alternates)")
    parser.add_argument("--threads", type=int, default=0, help="OMP/MKL threads per run (0: torch's default)")
    parser.add_argument("--_variant", help=argparse.SUPPRESS)
    parser.add_argument("--_data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._variant:  # a child process: one measured run, figures as the last stdout line
        figures = (bare_trl if args._variant == "bare" else recipe)(args, args._data, args._out)
        print(json.dumps(figures))
        return 0

    from training.synthetic_batch import write_exported_batch
    from training.tiny_model import build_tiny_chat_model

    with tempfile.TemporaryDirectory(prefix="bench-rm-") as tmp:
        work = Path(tmp)
        if args.model is None:
            args.model = str(build_tiny_chat_model(work / "tiny", hidden_size=256, num_layers=4, num_heads=8))
        args.model = str(Path(args.model).expanduser())
        data = write_exported_batch(work / "batch", n_train=args.pairs, n_test=8, batch="bench")
        args.passthrough = [
            "--model", args.model, "--batch", str(args.batch), "--max-length", str(args.max_length), "--bf16", args.bf16,
            *(["--gradient-checkpointing"] if args.gradient_checkpointing else []),
        ]
        print(f"model {args.model}, {args.pairs} pairs, {args.batch} pairs/step, max_length {args.max_length}, "
              f"bf16 {args.bf16}, gradient checkpointing {args.gradient_checkpointing}, threads {args.threads or 'default'}")
        print(f"load before: {os.getloadavg()}")
        runs: dict[str, list[dict]] = {"bare": [], "recipe": []}
        for index in range(args.repeats):
            order = ("bare", "recipe") if index % 2 == 0 else ("recipe", "bare")
            for variant in order:
                runs[variant].append(run_variant(variant, args, data, work, index))
        print(f"load after: {os.getloadavg()}")

    overhead = 0.0
    for key, unit in (("tokens_per_s", "tokens/s"), ("tokens_per_cpu_s", "tokens per CPU-second")):
        bare = statistics.median(run[key] for run in runs["bare"])
        ours = statistics.median(run[key] for run in runs["recipe"])
        print(f"{unit} (median of {args.repeats}): bare TRL RewardTrainer {bare:.1f}, platform recipe {ours:.1f}; "
              f"ratio recipe/bare {ours / bare:.3f} (overhead {100 * (1 - ours / bare):+.1f}%, target <= 5%)")
        overhead = 1 - ours / bare if key == "tokens_per_s" else overhead
    extra = statistics.median(r["wall_s"] - r["train_wall_s"] for r in runs["recipe"]) - statistics.median(
        r["wall_s"] - r["train_wall_s"] for r in runs["bare"]
    )
    print(f"recipe time outside the training loop beyond the bare script's (data checks, evaluation, plots): {extra:+.1f} s")
    return 0 if overhead <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
