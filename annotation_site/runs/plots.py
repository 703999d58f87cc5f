"""Live curves of a run drawn from its metrics.jsonl, so a run in progress has plots before the
recipe writes its own PNGs at the end. matplotlib's object API (no pyplot state) is safe to use
from several request threads."""
from __future__ import annotations

import io

from annotation_site.runs.models import Recipe

# Panels per recipe: (title, metrics.jsonl keys drawn in it). Panels with no data are left out.
PANELS = {
    Recipe.REWARD_MODEL: [("loss (eq. 2)", ["loss"]), ("pair accuracy (train batch)", ["accuracy"]),
                          ("reward margin chosen - rejected", ["margin"]), ("learning rate", ["learning_rate"])],
    Recipe.SFT: [("loss on answer tokens", ["loss", "eval_loss"]), ("token accuracy", ["mean_token_accuracy", "eval_mean_token_accuracy"]),
                 ("learning rate", ["learning_rate"])],
    Recipe.PPO: [("reward", ["reward", "helpfulness_score", "safety_score"]), ("KL to the reference", ["kl"]),
                 ("policy and value loss", ["policy_loss", "value_loss"]), ("response length", ["response_length"])],
    Recipe.REJECTION_SAMPLING: [("reward: best of K vs one sample", ["mean_best_reward", "mean_single_reward"]),
                                ("gap best - single", ["best_minus_single"]), ("pool size", ["pool_size"])],
}


def curves_png(recipe: str, rows: list[dict]) -> bytes | None:
    """A PNG with one panel per available metric group against step (or iteration); None if empty."""
    from matplotlib.figure import Figure

    x_key = "iteration" if any("iteration" in row for row in rows) else "step"
    panels = []
    for title, keys in PANELS.get(recipe, []):
        lines = []
        for key in keys:
            points = [(row[x_key], row[key]) for row in rows if isinstance(row.get(key), int | float) and x_key in row]
            if points:
                lines.append((key, points))
        if lines:
            panels.append((title, lines))
    if not panels:
        return None
    figure = Figure(figsize=(5 * min(len(panels), 2), 3.4 * ((len(panels) + 1) // 2)))
    for index, (title, lines) in enumerate(panels, start=1):
        axes = figure.add_subplot((len(panels) + 1) // 2, min(len(panels), 2), index)
        for key, points in lines:
            xs, ys = zip(*points)
            axes.plot(xs, ys, marker="o" if len(points) < 30 else None, markersize=3, label=key)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel(x_key)
        if len(lines) > 1:
            axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
