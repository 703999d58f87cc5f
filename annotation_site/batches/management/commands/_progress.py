"""A console progress line for the export commands (tqdm), fed by the exporter's progress callback."""
from __future__ import annotations

from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_line(stream, description: str):
    bar = tqdm(desc=description, unit="rows", file=stream, dynamic_ncols=True, mininterval=0.5)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
