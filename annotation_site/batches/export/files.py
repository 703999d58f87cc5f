"""The file machinery of an export: files of lines hashed as they are written, one background
thread for the writing, and the folder that appears only once complete."""
from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
import queue
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


# Linux only; elsewhere the files go through the page cache like any other.
_O_DIRECT = getattr(os, "O_DIRECT", 0)


def _open_direct(path: str, flags: int) -> int:
    """An `open()` opener that adds O_DIRECT where the filesystem accepts it."""
    try:
        return os.open(path, flags | _O_DIRECT, 0o666)
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise
        return os.open(path, flags, 0o666)


class LineFile:
    """A binary file of lines, hashed and written in large aligned blocks on the background thread,
    so checksums need no second read of the data and the encoder never waits on the disk.

    Lines are copied straight into page-aligned buffers (no list of lines to join), and the blocks
    are written with O_DIRECT, so the gigabytes of a big batch are not copied into the page cache
    and the fsync has little to flush. Filesystems that refuse O_DIRECT (tmpfs before Linux 6.6)
    get the same blocks through the page cache. The last, partial block is written after O_DIRECT
    is cleared, since direct writes must be whole blocks.

    Kept over plain buffered writes (lines joined into 1 MiB chunks, hashed and written on the
    background thread) because it measured more than the 10% faster that pays for it, in two runs
    on 1M rows: 1.16 times their rows/s with the writers as they are (25,879 against 22,379,
    medians of 2 alternating runs; 26.1-26.3 against 27.6-29.5 CPU-seconds of the export process)
    and 1.19 times with hand-sorted keys (34,419 against 28,928, medians of 3). `bench/export.py
    --against`, 2026-12-01, on a loaded 2-core machine; docs/export-format.md, "Speed".
    """

    # A multiple of any disk's block size; a few of these per file bound the memory.
    BLOCK_BYTES = 4 << 20
    BLOCKS = 3

    def __init__(self, path: Path, background: Background):
        self.path = path
        self.background = background
        self.handle = open(path, "wb", buffering=0, opener=_open_direct)
        self.sha256 = hashlib.sha256()
        self.rows = 0
        # Anonymous mmaps are page-aligned, as O_DIRECT needs; the writer hands each back once written.
        self.free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        for _ in range(self.BLOCKS):
            self.free.put(mmap.mmap(-1, self.BLOCK_BYTES))
        self.block = self.free.get()
        self.used = 0

    def add_line(self, line: bytes) -> None:
        self.rows += 1
        end = self.used + len(line)
        if end <= self.BLOCK_BYTES:
            self.block[self.used : end] = line
            self.used = end
        else:
            self._add_across_blocks(line)

    def _add_across_blocks(self, line: bytes) -> None:
        rest = memoryview(line)
        while rest:
            if self.used == self.BLOCK_BYTES:
                self.background.submit(self._write, self.block, self.used)
                self.block, self.used = self.free.get(), 0
            taken = min(len(rest), self.BLOCK_BYTES - self.used)
            self.block[self.used : self.used + taken] = rest[:taken]
            self.used += taken
            rest = rest[taken:]

    def _write(self, block: mmap.mmap, size: int) -> None:
        with memoryview(block) as view:
            data = view[:size]
            self.sha256.update(data)
            if size % self.BLOCK_BYTES:
                descriptor = self.handle.fileno()
                fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) & ~_O_DIRECT)
            while data:
                data = data[self.handle.write(data) :]
        self.free.put(block)

    def close(self) -> None:
        """Queue the last block and the fsync; the file is complete once the background has closed."""
        self.background.submit(self._write, self.block, self.used)
        self.background.submit(self._close)

    def _close(self) -> None:
        os.fsync(self.handle.fileno())
        self.handle.close()
        while not self.free.empty():
            self.free.get().close()

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
