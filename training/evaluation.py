"""Reward-model evaluation: accuracy per held-out split, rating level and source (Tables 7 and 8 of
the Llama 2 paper), and the distribution of rewards for safe and unsafe responses.

A (prompt, response) pair is scored on `tokenizer.apply_chat_template(prompt + [response])`, the
text every part of the platform scores on (docs/architecture.md, contract §3).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from training.export_format import RATINGS

# Column titles of Table 8, in the order of the rating scale.
RATING_TITLES = {
    "significantly_better": "Significantly Better",
    "better": "Better",
    "slightly_better": "Slightly Better",
    "negligibly_better": "Negligibly Better / Unsure",
}


@torch.no_grad()
def score_conversations(
    model, tokenizer, conversations: list[list[dict]], *, batch_size: int = 8, max_length: int | None = None
) -> list[float | None]:
    """Scalar reward of each conversation (ending with the response to score); None if over max_length.

    Conversations are sorted by length before batching so that little compute goes to padding.
    """
    encoded = [
        tokenizer(tokenizer.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
        for messages in conversations
    ]
    scores: list[float | None] = [None] * len(encoded)
    order = sorted(
        (i for i, ids in enumerate(encoded) if max_length is None or len(ids) <= max_length),
        key=lambda i: len(encoded[i]),
    )
    model.eval()
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in indices]}, padding=True, return_tensors="pt")
        logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
        for i, value in zip(indices, logits[:, 0].float().tolist()):
            scores[i] = value
    return scores


def score_pairs(model, tokenizer, rows: list[dict], **kwargs) -> tuple[list[float | None], list[float | None]]:
    """Rewards of the chosen and of the rejected response of each preference row."""
    chosen = score_conversations(model, tokenizer, [row["prompt"] + row["chosen"] for row in rows], **kwargs)
    rejected = score_conversations(model, tokenizer, [row["prompt"] + row["rejected"] for row in rows], **kwargs)
    return chosen, rejected


def pair_accuracy(rows: list[dict], chosen: list[float | None], rejected: list[float | None]) -> dict[str, Any]:
    """Accuracy overall, per rating level (Table 8) and per source of the pairs that could be scored."""
    correct: dict[tuple[str, str], list[bool]] = defaultdict(list)
    skipped = 0
    for row, chosen_reward, rejected_reward in zip(rows, chosen, rejected, strict=True):
        if chosen_reward is None or rejected_reward is None:
            skipped += 1
            continue
        right = chosen_reward > rejected_reward
        correct[("all", "")].append(right)
        correct[("rating", row.get("rating") or "unrated")].append(right)
        correct[("source", str(row.get("source")))].append(right)

    def summary(kind: str) -> dict[str, dict[str, float | int]]:
        ordered = sorted((key for key in correct if key[0] == kind), key=lambda key: _rating_order(key[1]))
        return {name: _accuracy(correct[(k, name)]) for k, name in ordered}

    overall = _accuracy(correct[("all", "")])
    return {
        "accuracy": overall["accuracy"],
        "pairs": overall["pairs"],
        "skipped_too_long": skipped,
        "by_rating": summary("rating"),
        "by_source": summary("source"),
    }


def reward_distribution(rows: list[dict], chosen: list[float | None], rejected: list[float | None]) -> dict[str, Any]:
    """Rewards of responses labelled safe and unsafe by safety annotation (the bins of §3.2.2)."""
    rewards: dict[str, list[float]] = {"safe": [], "unsafe": []}
    for row, chosen_reward, rejected_reward in zip(rows, chosen, rejected, strict=True):
        for is_safe, reward in ((row.get("chosen_is_safe"), chosen_reward), (row.get("rejected_is_safe"), rejected_reward)):
            if is_safe is not None and reward is not None:
                rewards["safe" if is_safe else "unsafe"].append(reward)
    return {label: _describe(values) | {"rewards": values} for label, values in rewards.items()}


def plot_reward_distribution(distribution: dict[str, Any], path: Path) -> Path | None:
    """Overlaid histograms of safe and unsafe rewards; None when no response carries a safety label."""
    if not any(distribution[label]["count"] for label in ("safe", "unsafe")):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for label, colour in (("safe", "tab:green"), ("unsafe", "tab:red")):
        if distribution[label]["count"]:
            axes.hist(distribution[label]["rewards"], bins=30, alpha=0.6, color=colour, label=f"{label} (n={distribution[label]['count']})")
    axes.set_xlabel("reward")
    axes.set_ylabel("responses")
    axes.set_title("Reward of safe and unsafe responses (held-out)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def format_tables(results: dict[str, dict[str, Any]], model_name: str, *, eval_max_length: int | None = None) -> str:
    """The eval results as two text tables laid out like the paper's Table 7 and Table 8.

    Table 7: one row for this reward model, one column per held-out split, then the average over
    all scored pairs. Table 8: one row per held-out split, one column per rating level, then the
    split's overall accuracy. Below them, what the tables leave out: held-out pairs longer than
    `eval_max_length`, per split.
    """
    splits = list(results)
    total_pairs = sum(results[name]["pairs"] for name in splits)
    correct = sum(results[name]["accuracy"] * results[name]["pairs"] for name in splits if results[name]["pairs"])
    average = correct / total_pairs if total_pairs else None
    lines = ["Reward model accuracy on the held-out splits (layout of Table 7)"]
    lines += _table(["", *splits, "Avg"], [[model_name, *(_percent(results[name]["accuracy"]) for name in splits), _percent(average)]])
    lines += ["", "Accuracy per rating level (layout of Table 8)"]
    columns = list(RATING_TITLES.values())
    rows = []
    for name in splits:
        by_rating = results[name]["by_rating"]
        cells = [_percent(by_rating[rating]["accuracy"]) if rating in by_rating else "-" for rating in RATING_TITLES]
        rows.append([name, *cells, _percent(results[name]["accuracy"])])
    lines += _table(["Test set", *columns, "Avg"], rows)
    lines += ["", *_left_out(results, eval_max_length)]
    return "\n".join(lines)


def _left_out(results: dict[str, dict[str, Any]], eval_max_length: int | None) -> list[str]:
    skipped = {name: result["skipped_too_long"] for name, result in results.items() if result["skipped_too_long"]}
    if not skipped:
        scope = "at full length" if eval_max_length is None else f"within eval_max_length={eval_max_length} tokens"
        return [f"Left out of the tables: nothing (every held-out pair was scored {scope})."]
    return [f"Left out of the tables: held-out pairs longer than eval_max_length={eval_max_length} tokens:"] + [
        f"  {name}: {count} of {count + results[name]['pairs']} pairs" for name, count in skipped.items()
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    render = lambda row: " | ".join(str(cell).ljust(width) if i == 0 else str(cell).rjust(width) for i, (cell, width) in enumerate(zip(row, widths)))  # noqa: E731
    return [render(header), "-+-".join("-" * width for width in widths), *(render(row) for row in rows)]


def _accuracy(values: list[bool]) -> dict[str, float | int | None]:
    return {"accuracy": sum(values) / len(values) if values else None, "pairs": len(values)}


def _rating_order(name: str) -> tuple[int, str]:
    return (RATINGS.index(name), name) if name in RATINGS else (len(RATINGS), name)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _describe(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "mean": None, "std": None, "p10": None, "median": None, "p90": None}
    tensor = torch.tensor(values, dtype=torch.float64)
    quantiles = torch.quantile(tensor, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).tolist()
    return {
        "count": len(values),
        "mean": tensor.mean().item(),
        "std": tensor.std(unbiased=False).item(),
        "p10": quantiles[0],
        "median": quantiles[1],
        "p90": quantiles[2],
    }
