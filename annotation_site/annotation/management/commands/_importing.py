"""What import_preferences and import_prompts share: a progress line, and the all-or-nothing rule."""
from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import CommandError
from tqdm import tqdm

from annotation_site.annotation.imports import count_lines, parse_file

MAX_LISTED = 50


def parse_with_progress(command, path: str, parse, *, skip_invalid: bool) -> list:
    """Parse a file with a progress line; refuse it whole on any bad line unless skip_invalid."""
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"No such file: {path}")
    with tqdm(total=count_lines(file), unit=" lines", desc="checking", file=sys.stderr, mininterval=0.5) as bar:
        rows, problems = parse_file(file, parse, on_line=lambda: bar.update(1))
    if problems and not skip_invalid:
        listed = "\n".join(f"  {problem}" for problem in problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise CommandError(
            f"{path}: {len(problems)} bad line(s); nothing was imported. Fix them, or pass --skip-invalid "
            f"to import the good lines.\n{listed}{more}"
        )
    for problem in problems:
        command.stdout.write(f"skipped {problem}")
    if not rows:
        raise CommandError(f"{path}: no valid line to import.")
    return rows


def write_bar(command, total: int):
    return tqdm(total=total, unit=" rows", desc="writing", file=sys.stderr, mininterval=0.5)
