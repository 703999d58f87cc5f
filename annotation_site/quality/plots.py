"""The quality dashboard's figures as SVG, drawn server-side with matplotlib's object API (no pyplot
state, safe in request threads), so the page needs no third-party JavaScript."""
from __future__ import annotations

import io
from collections import defaultdict

from annotation_site.quality.metrics import RATING_LEVELS
from annotation_site.quality.selectors import PAPER_SAFETY_BINS


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.tight_layout()
    figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog so the figure can be inlined in HTML


def summary_svgs(summary: dict) -> dict[str, str]:
    """Named SVG figures of a quality summary; a figure with no data is left out."""
    from matplotlib.figure import Figure

    figures = {}
    per_day = defaultdict(list)
    for row in summary["per_day"]:
        per_day[row["guideline"]].append((row["day"], row["comparisons"]))
    if per_day:
        figure = Figure(figsize=(6, 2.8))
        axes = figure.add_subplot()
        for kind, points in sorted(per_day.items()):
            days, counts = zip(*points)
            axes.plot(days, counts, marker="o", markersize=3, label=kind)
        axes.set_title("Comparisons per day", fontsize=10)
        axes.tick_params(axis="x", labelrotation=45, labelsize=7)
        axes.legend(fontsize=8)
        figures["per_day"] = _svg(figure)
    if summary["ratings"]:
        figure = Figure(figsize=(6, 2.8))
        axes = figure.add_subplot()
        levels = list(RATING_LEVELS) + ["unrated"]
        kinds = sorted(summary["ratings"])
        width = 0.8 / max(len(kinds), 1)
        for offset, kind in enumerate(kinds):
            counts = summary["ratings"][kind]
            total = sum(counts.values()) or 1
            axes.bar([i + offset * width for i in range(len(levels))], [counts.get(level, 0) / total for level in levels],
                     width=width, label=kind)  # fmt: skip
        axes.set_xticks([i + width * (len(kinds) - 1) / 2 for i in range(len(levels))])
        axes.set_xticklabels([level.replace("_", " ") for level in levels], fontsize=7)
        axes.set_title("Rating levels (share of comparisons)", fontsize=10)
        axes.legend(fontsize=8)
        figures["ratings"] = _svg(figure)
    bins = summary["safety_bins"]
    if any(entry["count"] for entry in bins.values()):
        figure = Figure(figsize=(6, 2.8))
        axes = figure.add_subplot()
        names = list(PAPER_SAFETY_BINS)
        axes.bar([i - 0.2 for i in range(len(names))], [bins[name]["share"] or 0 for name in names], width=0.4, label="here")
        axes.bar([i + 0.2 for i in range(len(names))], [PAPER_SAFETY_BINS[name] for name in names], width=0.4, label="Llama 2")
        axes.set_xticks(range(len(names)))
        axes.set_xticklabels([name.replace("_", " ") for name in names], fontsize=7)
        axes.set_title("Safety bins beside the paper's 18% / 47% / 35%", fontsize=10)
        axes.legend(fontsize=8)
        figures["safety_bins"] = _svg(figure)
    weeks = [row for row in summary["weeks"] if row["agreement"] is not None or row["alpha"] is not None]
    if weeks:
        figure = Figure(figsize=(6, 2.8))
        axes = figure.add_subplot()
        by_kind = defaultdict(list)
        for row in weeks:
            by_kind[row["guideline"]].append(row)
        for kind, rows in sorted(by_kind.items()):
            axes.plot([r["week"] for r in rows], [r["agreement"] for r in rows], marker="o", label=f"{kind} agreement")
            axes.plot([r["week"] for r in rows], [r["alpha"] for r in rows], marker="s", linestyle="--", label=f"{kind} alpha")
        axes.set_ylim(-0.2, 1.0)
        axes.set_title("Agreement on the chosen response and Krippendorff's alpha, by week", fontsize=10)
        axes.tick_params(axis="x", labelsize=7)
        axes.legend(fontsize=7)
        figures["weeks"] = _svg(figure)
    return figures
