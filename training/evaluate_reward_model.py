"""Reward models scored on the same held-out splits (Llama 2 §3.2.2, Tables 7 and 8): is the new
reward model at least as accurate as the one it would replace?

    python -m training.evaluate_reward_model --config training/configs/evaluate_reward_model.yaml \
        model=runs/rm-helpfulness-v2 'against=[runs/rm-helpfulness-v1]'

Every reward model (`model`, then each of `against`) scores the chosen and the rejected response
of every held-out pair (`preferences.test.jsonl`) of every data source, exactly as the
reward-model recipe evaluates the model it has just trained (`training.evaluation.score_pairs` and
`pair_accuracy`); an old model is so scored on a newer batch's split it never saw. The weekly loop
(annotation_site/loop) reads this to keep or refuse a newly trained reward model.

Outputs in `out/` (written to `out.tmp/`, renamed when complete; `out.failed/` with error.txt on
error): `eval.json` ({"models": {label: {"path", "splits": {split: accuracy table}, "average"}}}),
`metrics.jsonl` (one row per model scored, for the dashboard's progress), `data.json`,
`config.yaml`, `train.log`. No checkpoint: nothing is trained.
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from training.config import ConfigError, parse_args
from training.data import load_eval_splits, parse_sources
from training.run_folder import RunFolder

logger = logging.getLogger("training")


@dataclass
class Config:
    # The reward model under evaluation (an AutoModelForSequenceClassification folder, one output).
    model: str
    # The reward models it is compared with (e.g. the one it would replace); may be empty.
    against: list[str]
    # Exported batch folders with their held-out splits (training/data.py), with guideline filters.
    data: list[dict | str]
    # Folder of the evaluation's results.
    out: str
    # Names of the models in the tables, `model` first (empty: from their folders' names).
    labels: list[str] = field(default_factory=list)
    # Longest conversation scored; None scores every pair at full length (as the recipe's eval_max_length).
    eval_max_length: int | None = None
    eval_batch_size: int = 16
    seed: int = 42
    # Replace an existing `out` folder instead of refusing to.
    overwrite: bool = False

    def __post_init__(self) -> None:
        versions = [self.model, *self.against]
        if len(set(versions)) != len(versions):
            raise ValueError(f"model and against name the same reward model twice: {versions}")
        if self.labels and len(self.labels) != len(versions):
            raise ValueError(f"labels must name all {len(versions)} reward models (model first), got {len(self.labels)}")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be at least 1, got {self.eval_batch_size}")


# What a researcher may override from the site (runs/configs.py): sizes only. The reward models and
# the data come from the registry and the exported batches.
TUNABLE_KEYS = frozenset({"eval_max_length", "eval_batch_size", "seed"})


def average_accuracy(splits: dict[str, dict]) -> float | None:
    """Accuracy over every scored pair of every split (the pair-weighted mean of the splits)."""
    pairs = sum(split.get("pairs") or 0 for split in splits.values())
    correct = sum((split.get("accuracy") or 0) * (split.get("pairs") or 0) for split in splits.values())
    return correct / pairs if pairs else None


def evaluate(config: Config) -> Path:
    """Score every reward model on every held-out split; returns the results folder."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.evaluation import pair_accuracy, score_pairs
    from training.evaluate_policy import version_labels

    versions = [config.model, *config.against]
    for path in versions:
        if not (Path(path) / "config.json").is_file():
            raise ConfigError(f"{path} is not a reward-model checkpoint folder")
    labels = list(config.labels) or version_labels(versions)
    splits, _ = load_eval_splits(parse_sources(config.data))
    if not splits:
        raise ConfigError("no data source has a held-out split (preferences.test.jsonl) to score on")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with RunFolder(config.out, overwrite=config.overwrite) as run:
        run.save_config(config)
        run.write_json("data.json", {"total_steps": len(versions), "splits": {name: len(rows) for name, rows in splits.items()}})
        results = {}
        for step, (label, path) in enumerate(zip(labels, versions), start=1):
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).to(device)
            scored = {}
            for name, rows in splits.items():
                chosen, rejected = score_pairs(model, tokenizer, rows, batch_size=config.eval_batch_size,
                                               max_length=config.eval_max_length)
                scored[name] = pair_accuracy(rows, chosen, rejected)
            del model
            results[label] = {"path": str(Path(path).resolve()), "splits": scored, "average": average_accuracy(scored)}
            with (run.tmp / "metrics.jsonl").open("a") as file:
                file.write(json.dumps({"step": step, "model": label, "average": results[label]["average"]}) + "\n")
            logger.info("%s: accuracy %s over %d splits", label, results[label]["average"], len(scored))
        run.write_json("eval.json", {"models": results, "labels": labels})
        return run.finish()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(Config, argv, description="Score reward models on the same held-out splits (Llama 2 §3.2.2)")
    print(evaluate(config))


if __name__ == "__main__":
    main(sys.argv[1:])
