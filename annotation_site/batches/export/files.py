"""The file machinery of an export: files of lines hashed as they are written, one background
thread for the writing, and the folder that appears only once complete."""
from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


class ExportError(Exception):
    pass


class Background:
    """One thread that runs file writes, hashing and Parquet compression in order, beside the encoder.

    File writes, sha256 of large buffers and pyarrow's Parquet writer release the GIL, so they run
    on the second core while the main thread encodes the next rows. At most `depth` jobs wait
    (each holds one chunk of encoded rows), so memory stays bounded; an error in a job is raised
    at the next submit or at close.
    """

    def __init__(self, depth: int = 4):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-writer")
        self.pending: deque[Future] = deque()
        self.depth = depth

    def submit(self, job: Callable, *args) -> None:
        while self.pending and (len(self.pending) >= self.depth or self.pending[0].done()):
            self.pending.popleft().result()
        self.pending.append(self.executor.submit(job, *args))

    def close(self) -> None:
        """Wait for every job (raising the first error) and stop the thread."""
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.executor.shutdown(wait=True, cancel_futures=True)


class LineFile:
    """A file of lines, written and hashed a chunk at a time on the background thread, so the
    checksum needs no second read of the data and the encoder does not wait on the disk.

    Plain buffered writes: an O_DIRECT writer of aligned blocks with hand-sorted row keys measured
    N% faster on 1M rows (bench/export.py --against, see docs/export-format.md), below the 10% that
    would pay for its complexity.
    """

    # Lines are joined into chunks of about this size: hashlib releases the GIL only for buffers
    # over 2 KiB, and fewer, larger writes keep the background thread's overhead small.
    CHUNK_BYTES = 1 << 20

    def __init__(self, path: Path, background: Background):
        self.path = path
        self.background = background
        self.handle = open(path, "wb")
        self.sha256 = hashlib.sha256()
        self.rows = 0
        self.lines: list[bytes] = []
        self.size = 0

    def add_line(self, line: bytes) -> None:
        self.rows += 1
        self.lines.append(line)
        self.size += len(line)
        if self.size >= self.CHUNK_BYTES:
            self._flush()

    def _flush(self) -> None:
        self.background.submit(self._write, b"".join(self.lines))
        self.lines, self.size = [], 0

    def _write(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        self.handle.write(chunk)

    def close(self) -> None:
        """Queue the last chunk and the fsync; the file is complete once the background has closed."""
        self._flush()
        self.background.submit(self._close)

    def _close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()

    def entry(self) -> dict:
        """The manifest's entry for the file, once the background has closed."""
        return {"rows": self.rows, "sha256": self.sha256.hexdigest()}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_file(path: Path, data: bytes) -> str:
    """Write a small file whole and fsync it; returns its sha256."""
    path.write_bytes(data)
    fsync_path(path)
    return hashlib.sha256(data).hexdigest()


def remove_partial_exports(final: Path) -> None:
    """Remove folders a crashed export left beside `final` (never `final` itself)."""
    for stale in final.parent.glob(f".{final.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def atomic_folder(final: Path, *, replace: bool) -> Iterator[Path]:
    """Yield an empty folder beside `final`; rename it to `final` only if the block completes.

    A crash or an error leaves `final` as it was (absent, or the previous export when replacing).
    Replacing swaps the old folder aside first: the only instant without `final` is between two
    renames of the same directory.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not replace:
        raise ExportError(f"{final} already exists: choose another folder or remove it first.")
    partial = final.parent / f".{final.name}.partial-{uuid.uuid4().hex[:12]}"
    partial.mkdir()
    try:
        yield partial
        fsync_path(partial)
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:12]}"
            os.rename(final, old)
        os.rename(partial, final)
        fsync_path(final.parent)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
