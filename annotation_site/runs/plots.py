"""Live curves of a run drawn from its metrics.jsonl, so a run in progress has plots before the
recipe writes its own PNGs at the end. matplotlib's object API (no pyplot state) is safe to use
from several request threads."""
from __future__ import annotations

import io

from annotation_site.runs.recipes import site_recipe


def curves_png(recipe: str, rows: list[dict]) -> bytes | None:
    """A PNG with one panel per available metric group of the recipe's row (runs/recipes.py)
    against its progress key; panels with no data are left out; None if none has any."""
    from matplotlib.figure import Figure

    recipe_row = site_recipe(recipe)
    x_key = recipe_row.progress_key
    panels = []
    for panel in recipe_row.panels:
        lines = []
        for key in panel.keys:
            points = [(row[x_key], row[key]) for row in rows if isinstance(row.get(key), int | float) and x_key in row]
            if points:
                lines.append((key, points))
        if lines:
            panels.append((panel.title, lines))
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
