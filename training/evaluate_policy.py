"""Is the new checkpoint better? Policy checkpoints compared on the same prompts (Llama 2 §3.4.1).

    python -m training.evaluate_policy --config training/configs/evaluate_policy.yaml model=runs/ppo-v2 'against=[runs/ppo-v1]'

1. prompts: held-out prompts of exported batches (`split: test`, the pairs no reward model or
   policy trained on) or a prompt JSONL file, helpfulness and safety prompts alike, up to
   `prompts_per_guideline` of each;
2. sampling: every checkpoint (`model`, the one under evaluation, then each of `against`) answers
   every prompt once through the serving layer: a vLLM server launched for it where vLLM is
   installed, the local transformers engine otherwise (`engine`); the sampling parameters and the
   engine are recorded with each answer;
3. scoring: the helpfulness and the safety reward model score every answer; the combined reward
   is `logit(R_c)` of eq. 3-4 (`training.rewards`, no whitening: it is monotonic per batch);
4. optional judge: an OpenAI-compatible chat endpoint (`judge_url`, `judge_model`) is asked which
   of the two answers is better, in both orders (`training.judge`);
5. report: per pair of checkpoints and per guideline, wins, ties and losses by the combined reward,
   by each reward model alone and by the judge, the judge's agreement with the reward models; per
   checkpoint the share of safety-prompt answers the safety model scores below 0.15 (eq. 3's
   threshold), mean answer length, mean scores; and the reward distributions (Fig. 20 layout).

Outputs in `out/` (written to `out.tmp/`, renamed when complete; `out.failed/` with error.txt on
error): `answers.jsonl` (every prompt x checkpoint: answer, sampling record, tokens, scores),
`judge.jsonl` (every judged pair: both replies, both verdicts, outcome), `eval.json` (the tables),
`reward_distribution.png` (Fig. 20), `win_rates.png`, `metrics.jsonl` (one row per stage, for the
dashboard's progress), `data.json`, `config.yaml`, `train.log`. No checkpoint: nothing is trained.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Literal

import torch

from training.config import ConfigError, parse_args
from training.prompts import Prompt, load_prompts
from training.rejection_sampling import _pick_engine, _sample
from training.rewards import SAFETY_THRESHOLD
from training.resume import save_state
from training.run_folder import RunFolder

logger = logging.getLogger("training")

ALL = "all"  # the row over every prompt, beside one row per guideline
SCORERS = ("combined", "helpfulness_rm", "safety_rm")


@dataclass
class Config:
    # The checkpoint under evaluation (e.g. this week's policy); it is compared with each of `against`.
    model: str
    # The checkpoints it is compared with (e.g. last week's policy, the SFT model); at least one.
    # Every pair among all of them is reported.
    against: list[str]
    # Prompts: exported batch folders or prompt JSONL files (training/prompts.py), with guidelines.
    data: list[dict | str]
    # Folder of the evaluation's results.
    out: str
    helpfulness_reward_model: str
    safety_reward_model: str
    # Names of the checkpoints in the tables, `model` first (empty: from their folders' names).
    labels: list[str] = field(default_factory=list)
    # "test": the exported batches' held-out pairs (1,000 per batch in the paper, §3.2.2), which no
    # recipe trains on; "train": their training pairs. A JSONL file is read whole either way.
    split: Literal["test", "train"] = "test"
    # Prompts of each guideline answered (None: all of them).
    prompts_per_guideline: int | None = 200
    # Eq. 3's threshold: an answer whose safety probability is below it counts as unsafe.
    safety_threshold: float = SAFETY_THRESHOLD
    # Sampling: the Llama 2 reference chat code's defaults (meta-llama/llama example_chat_completion.py:
    # temperature 0.6, top_p 0.9); the paper gives none for its evaluations.
    temperature: float = 0.6
    top_p: float = 0.9
    max_new_tokens: int = 512
    # Two scores closer than this are a tie.
    tie_tolerance: float = 1e-4
    # "vllm" launches a vLLM server for each checkpoint; "local" uses transformers generate in this
    # process; "auto" picks vLLM where it is installed.
    engine: Literal["auto", "vllm", "local"] = "auto"
    # serving.launcher.ServerConfig settings for the vLLM servers (e.g. {enforce_eager: true}).
    vllm: dict = field(default_factory=dict)
    generation_batch_size: int = 32
    scoring_batch_size: int = 16
    # Optional judge: an OpenAI-compatible chat endpoint (base URL ending in /v1) and its model name.
    judge_url: str | None = None
    judge_model: str | None = None
    # Environment variable holding the judge's API key (never the key itself: the config is stored).
    judge_api_key_env: str = "JUDGE_API_KEY"
    # The verdict is one letter; a few tokens leave room for "Response A".
    judge_max_tokens: int = 8
    judge_timeout_s: float = 120.0
    seed: int = 42
    # Replace an existing `out` folder instead of refusing to.
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.against:
            raise ValueError("against must name at least one checkpoint to compare the model with")
        versions = [self.model, *self.against]
        if len(set(versions)) != len(versions):
            raise ValueError(f"model and against name the same checkpoint twice: {versions}")
        if self.labels and len(self.labels) != len(versions):
            raise ValueError(f"labels must name all {len(versions)} checkpoints (model first), got {len(self.labels)}")
        if self.labels and len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be distinct, got {self.labels}")
        for name in ("max_new_tokens", "generation_batch_size", "scoring_batch_size", "judge_max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.prompts_per_guideline is not None and self.prompts_per_guideline < 1:
            raise ValueError(f"prompts_per_guideline must be at least 1 or null, got {self.prompts_per_guideline}")
        if (self.judge_url is None) != (self.judge_model is None):
            raise ValueError("give both judge_url and judge_model, or neither")
        if self.judge_url is not None and not self.judge_url.startswith(("http://", "https://")):
            raise ValueError(f"judge_url must be an http(s) URL ending in /v1, got {self.judge_url!r}")
        if not 0 < self.safety_threshold < 1:
            raise ValueError(f"safety_threshold is a probability in (0, 1), got {self.safety_threshold}")


# What a researcher may override from the site (runs/configs.py): sampling and sizes. The
# checkpoints, prompts, reward models, judge and folders come from the launch form's choices.
TUNABLE_KEYS = frozenset({
    "split", "prompts_per_guideline", "safety_threshold", "temperature", "top_p", "max_new_tokens",
    "tie_tolerance", "engine", "generation_batch_size", "scoring_batch_size", "judge_max_tokens",
    "judge_timeout_s", "seed",
})


# --- maths: small pure functions --------------------------------------------------------------


def compare_scores(a: torch.Tensor, b: torch.Tensor, *, tolerance: float) -> dict[str, float]:
    """Wins, ties and losses of `a` against `b`, prompt by prompt, and the win rates.

    `win_rate` counts a tie as half a win (as the paper's Fig. 11 win rates do when ties are
    folded in); `strict_win_rate` counts wins alone. Shapes: `(prompts,)`, `(prompts,)`.
    """
    if a.shape != b.shape or a.dim() != 1:
        raise ValueError(f"scores must be two vectors of one score per prompt, got {tuple(a.shape)} and {tuple(b.shape)}")
    difference = a - b
    ties = int((difference.abs() <= tolerance).sum())
    wins = int((difference > tolerance).sum())
    losses = a.numel() - wins - ties
    return outcome_counts(wins, ties, losses)


def outcome_counts(wins: int, ties: int, losses: int) -> dict[str, float]:
    total = wins + ties + losses
    return {
        "prompts": total, "wins": wins, "ties": ties, "losses": losses,
        "win_rate": (wins + 0.5 * ties) / total if total else None,
        "strict_win_rate": wins / total if total else None,
    }


def unsafe_share(safety_scores: torch.Tensor, *, threshold: float = SAFETY_THRESHOLD) -> float | None:
    """Share of answers whose safety probability `sigmoid(R_s)` is below `threshold` (eq. 3).

    Shapes: `(answers,)` raw safety-model outputs -> a share in [0, 1], None without answers.
    """
    if safety_scores.numel() == 0:
        return None
    return float((torch.sigmoid(safety_scores) < threshold).float().mean())


def agreement(judge: Sequence[str], reward_model: Sequence[str]) -> dict[str, float | int | None]:
    """How often the judge and a reward model pick the same answer, over the prompts where both
    pick one (a tie or an invalid verdict on either side leaves the prompt out)."""
    decided = [(j, r) for j, r in zip(judge, reward_model, strict=True) if j in ("win", "loss") and r in ("win", "loss")]
    same = sum(j == r for j, r in decided)
    return {"prompts": len(decided), "agree": same, "rate": same / len(decided) if decided else None}


def outcomes(a: torch.Tensor, b: torch.Tensor, *, tolerance: float) -> list[str]:
    """Per prompt, "win" / "tie" / "loss" of `a` against `b`."""
    return ["tie" if abs(d) <= tolerance else "win" if d > 0 else "loss" for d in (a - b).tolist()]


def version_labels(paths: Sequence[str]) -> list[str]:
    """Short distinct names for checkpoint folders: the last path part, or more where two share it
    (the dashboard's runs all write a folder named `checkpoint`)."""
    parts = [Path(path).resolve().parts for path in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(path) for path in paths]


# --- the recipe ----------------------------------------------------------------------------------


def evaluate(config: Config, judge_engine=None) -> Path:
    """Run the evaluation as `config` says; returns the results folder.

    `judge_engine` replaces the judge endpoint with any `ChatEngine` (e.g. a local engine).
    """
    from serving.types import SamplingParams

    versions = [config.model, *config.against]
    for path in [*versions, config.helpfulness_reward_model, config.safety_reward_model]:
        if not Path(path).is_dir():
            raise ConfigError(f"{path} is not a checkpoint folder")
    labels = list(config.labels) or version_labels(versions)
    prompts = select_prompts(load_prompts(config.data, seed=config.seed, split=config.split), config.prompts_per_guideline)
    guidelines = [prompt.guideline or "helpfulness" for prompt in prompts]
    engine = _pick_engine(config.engine)
    params = SamplingParams(temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_new_tokens,
                            n=1, seed=config.seed)
    judging = judge_engine is not None or config.judge_url is not None

    with RunFolder(config.out, overwrite=config.overwrite, config=config) as run:
        run.save_config(config)
        metrics_path = run.tmp / "metrics.jsonl"
        run.write_json("data.json", {
            "total_steps": len(versions) + 1 + judging, "prompts": len(prompts),
            "by_guideline": {g: guidelines.count(g) for g in sorted(set(guidelines))},
        })
        logger.info("evaluating %s against %s on %d prompts (%s), %s engine", labels[0], ", ".join(labels[1:]),
                    len(prompts), ", ".join(f"{g}: {guidelines.count(g)}" for g in sorted(set(guidelines))), engine)
        step = 0

        def record(row: dict) -> None:
            with metrics_path.open("a") as file:
                file.write(json.dumps({"step": step, **row}) + "\n")

        # 2. Every checkpoint answers every prompt; the answers are saved after each checkpoint, so
        # a run whose worker died samples only the checkpoints it had not finished (training/resume.py).
        answers: dict[str, list] = {}
        if run.resumed is not None:
            answers = pickle.loads((run.resumed.path / "answers.pickle").read_bytes())
            step = len(answers)
        for label, path in zip(labels, versions):
            if label in answers:
                continue
            started = time.perf_counter()
            completions = _sample(Path(path), prompts, params, engine, config, run.tmp / f"vllm-{len(answers) + 1}.log",
                                  desc=f"sampling {label}")
            answers[label] = [choices[0] for choices in completions]
            seconds = time.perf_counter() - started
            step += 1
            record({"stage": "sampling", "version": label, "answers": len(prompts), "seconds": seconds,
                    "answers_per_s": len(prompts) / max(seconds, 1e-9)})
            save_state(config.out, step, lambda folder: (folder / "answers.pickle").write_bytes(pickle.dumps(answers)))

        # 3. Both reward models score every answer.
        from training.scoring import RewardScorer

        started = time.perf_counter()
        scorer = RewardScorer(config.helpfulness_reward_model, config.safety_reward_model,
                              safety_threshold=config.safety_threshold, batch_size=config.scoring_batch_size,
                              device="cuda" if torch.cuda.is_available() else "cpu")
        flat = scorer.score([p.chat for _ in labels for p in prompts],
                            [c.text for label in labels for c in answers[label]], guidelines * len(labels))
        del scorer
        n = len(prompts)
        scores = {label: {"combined": flat.reward[i * n:(i + 1) * n], "helpfulness_rm": flat.helpfulness[i * n:(i + 1) * n],
                          "safety_rm": flat.safety[i * n:(i + 1) * n]} for i, label in enumerate(labels)}
        if not (torch.isfinite(flat.helpfulness).all() and torch.isfinite(flat.safety).all()):
            raise ValueError("a reward model gave a non-finite score; check its weights")
        seconds = time.perf_counter() - started
        step += 1
        record({"stage": "scoring", "answers": n * len(labels), "seconds": seconds,
                "answers_per_s": n * len(labels) / max(seconds, 1e-9)})
        _write_answers(run.tmp / "answers.jsonl", prompts, guidelines, labels, versions, answers, scores)

        # 4. The judge, in both orders, on every pair of checkpoints.
        judged: dict[tuple[str, str], list[str]] = {}
        judge_info = None
        if judging:
            started = time.perf_counter()
            judged, judge_info = _judge(config, judge_engine, prompts, labels, answers, run.tmp / "judge.jsonl")
            seconds = time.perf_counter() - started
            step += 1
            record({"stage": "judging", "requests": judge_info["requests"], "invalid": judge_info["invalid_verdicts"],
                    "seconds": seconds})

        # 5. The report.
        report = {
            "versions": [{"label": label, "path": str(Path(path).resolve()), "role": "candidate" if i == 0 else "baseline"}
                         for i, (label, path) in enumerate(zip(labels, versions))],
            "prompts": {g: guidelines.count(g) for g in sorted(set(guidelines))} | {ALL: n},
            "split": config.split,
            "sampling": {**params.to_dict(), "engine": engine},
            "safety_threshold": config.safety_threshold,
            "per_version": {label: version_table(answers[label], scores[label], guidelines, config.safety_threshold)
                            for label in labels},
            "pairs": pair_tables(labels, scores, guidelines, judged, config.tie_tolerance),
        }
        if judge_info is not None:
            report["judge"] = judge_info
        run.write_json("eval.json", report)
        plot_reward_distribution(labels, scores, run.tmp / "reward_distribution.png")
        plot_win_rates(report["pairs"], run.tmp / "win_rates.png")
        for row in report["pairs"]:
            if row["guideline"] == ALL:
                logger.info("%s vs %s: win rate %.3f by the combined reward (%d/%d/%d wins/ties/losses)", row["a"], row["b"],
                            row["combined"]["win_rate"], row["combined"]["wins"], row["combined"]["ties"],
                            row["combined"]["losses"])
        return run.finish()


def select_prompts(prompts: list[Prompt], per_guideline: int | None) -> list[Prompt]:
    """The first `per_guideline` prompts of each guideline (prompts arrive shuffled), in their order."""
    if per_guideline is None:
        return prompts
    taken: dict[str, int] = {}
    selected = []
    for prompt in prompts:
        guideline = prompt.guideline or "helpfulness"
        if taken.get(guideline, 0) < per_guideline:
            taken[guideline] = taken.get(guideline, 0) + 1
            selected.append(prompt)
    return selected


def version_table(completions: list, scores: dict[str, torch.Tensor], guidelines: list[str], threshold: float) -> dict:
    """Per guideline (and over all prompts): answers, mean length, truncation, mean scores, unsafe share."""
    table = {}
    for guideline in [*sorted(set(guidelines)), ALL]:
        index = [i for i, g in enumerate(guidelines) if guideline in (g, ALL)]
        chosen = torch.tensor(index, dtype=torch.long)
        table[guideline] = {
            "answers": len(index),
            "mean_length_tokens": sum(completions[i].completion_tokens for i in index) / len(index),
            "mean_length_chars": sum(len(completions[i].text) for i in index) / len(index),
            "truncated_share": sum(completions[i].finish_reason == "length" for i in index) / len(index),
            "mean_combined_reward": float(scores["combined"][chosen].mean()),
            "mean_helpfulness_probability": float(torch.sigmoid(scores["helpfulness_rm"][chosen]).mean()),
            "mean_safety_probability": float(torch.sigmoid(scores["safety_rm"][chosen]).mean()),
            "unsafe_share": unsafe_share(scores["safety_rm"][chosen], threshold=threshold),
        }
    return table


def pair_tables(labels: list[str], scores: dict, guidelines: list[str], judged: dict, tolerance: float) -> list[dict]:
    """One row per pair of checkpoints and per guideline (and over all prompts)."""
    rows = []
    for a, b in combinations(labels, 2):
        for guideline in [*sorted(set(guidelines)), ALL]:
            index = torch.tensor([i for i, g in enumerate(guidelines) if guideline in (g, ALL)], dtype=torch.long)
            row: dict = {"a": a, "b": b, "guideline": guideline}
            for scorer in SCORERS:
                row[scorer] = compare_scores(scores[a][scorer][index], scores[b][scorer][index], tolerance=tolerance)
            if (a, b) in judged:
                verdicts = [judged[(a, b)][i] for i in index.tolist()]
                row["judge"] = outcome_counts(verdicts.count("win"), verdicts.count("tie"), verdicts.count("loss"))
                row["judge"]["invalid"] = verdicts.count("invalid")
                row["judge_agreement"] = {
                    scorer: agreement(verdicts, outcomes(scores[a][scorer][index], scores[b][scorer][index],
                                                         tolerance=tolerance))
                    for scorer in SCORERS
                }
            rows.append(row)
    return rows


def _judge(config: Config, judge_engine, prompts: list[Prompt], labels: list[str], answers: dict, path: Path):
    from training.judge import judge_pairs

    close = None
    if judge_engine is None:
        from serving.client import VLLMClient

        judge_engine = close = VLLMClient(config.judge_url, config.judge_model, timeout_s=config.judge_timeout_s,
                                          api_key=os.environ.get(config.judge_api_key_env) or "EMPTY")
    judged: dict[tuple[str, str], list[str]] = {}
    invalid = 0
    try:
        with path.open("w") as file:
            for a, b in combinations(labels, 2):
                items = [(p.chat, answers[a][i].text, answers[b][i].text, p.guideline) for i, p in enumerate(prompts)]
                results = judge_pairs(judge_engine, items, max_tokens=config.judge_max_tokens, seed=config.seed)
                judged[(a, b)] = [result.outcome for result in results]
                for i, result in enumerate(results):
                    invalid += (result.first is None) + (result.second is None)
                    file.write(json.dumps({"a": a, "b": b, "prompt_index": i, "guideline": prompts[i].guideline,
                                           "a_first_reply": result.first_reply, "b_first_reply": result.second_reply,
                                           "a_first_verdict": result.first, "b_first_verdict": result.second,
                                           "outcome_for_a": result.outcome}) + "\n")
    finally:
        if close is not None:
            close.close()
    requests = 2 * len(prompts) * len(judged)
    info = {"model": config.judge_model or getattr(judge_engine, "model", "given engine"), "url": config.judge_url,
            "requests": requests, "invalid_verdicts": invalid, "invalid_share": invalid / requests if requests else None,
            "both_orders": True, "temperature": 0.0, "max_tokens": config.judge_max_tokens}
    return judged, info


def _write_answers(path: Path, prompts, guidelines, labels, versions, answers, scores) -> None:
    with path.open("w") as file:
        for label, version in zip(labels, versions):
            for i, (prompt, guideline) in enumerate(zip(prompts, guidelines)):
                completion = answers[label][i]
                file.write(json.dumps({
                    "version": label, "checkpoint": str(Path(version).resolve()), "prompt_index": i,
                    "prompt": prompt.chat, "guideline": guideline, "response": completion.text,
                    "finish_reason": completion.finish_reason, "completion_tokens": completion.completion_tokens,
                    "sampling": completion.sampling_record(),
                    **{f"{scorer}_score": scores[label][scorer][i].item() for scorer in SCORERS},
                }) + "\n")


def plot_reward_distribution(labels: list[str], scores: dict, path: Path) -> Path:
    """The paper's Fig. 20: histograms of the safety and helpfulness reward-model scores (as
    probabilities) of each version's answers, one row per version, shared axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(labels), 2, figsize=(8, 1.8 * len(labels) + 1), sharex=True, squeeze=False)
    bins = torch.linspace(0, 1, 21).tolist()
    for row, label in enumerate(labels):
        for column, (scorer, title) in enumerate((("safety_rm", "Safety RM score"), ("helpfulness_rm", "Helpfulness RM score"))):
            axis = axes[row][column]
            axis.hist(torch.sigmoid(scores[label][scorer]).tolist(), bins=bins, color=f"C{row}", alpha=0.8)
            axis.set_ylabel(label, fontsize=8)
            if row == 0:
                axis.set_title(title)
            if row == len(labels) - 1:
                axis.set_xlabel("reward model score (probability)")
    figure.suptitle("Reward distribution per version (Llama 2 Fig. 20 layout)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_win_rates(pairs: list[dict], path: Path) -> Path:
    """Win rate of the first of each pair over all prompts, by each scorer (0.5: no difference)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in pairs if row["guideline"] == ALL]
    scorers = [*SCORERS, *(["judge"] if any("judge" in row for row in rows) else [])]
    figure, axis = plt.subplots(figsize=(max(5, 1.6 * len(rows) + 2), 4))
    width = 0.8 / len(scorers)
    for k, scorer in enumerate(scorers):
        values = [row[scorer]["win_rate"] if scorer in row and row[scorer]["win_rate"] is not None else 0 for row in rows]
        axis.bar([i + k * width for i in range(len(rows))], values, width=width, label=scorer)
    axis.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axis.set_xticks([i + width * (len(scorers) - 1) / 2 for i in range(len(rows))])
    axis.set_xticklabels([f"{row['a']}\nvs {row['b']}" for row in rows], fontsize=8)
    axis.set_ylim(0, 1)
    axis.set_ylabel("win rate (ties count half)")
    axis.set_title("Win rate of the first checkpoint of each pair")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    config = parse_args(Config, argv, description="Compare policy checkpoints by reward models and a judge (Llama 2 §3.4)")
    print(evaluate(config))


if __name__ == "__main__":
    main(sys.argv[1:])
