"""A batch folder as a zip archive produced while it is sent, never built whole in memory or on disk.

The standard library's zipfile can write to a stream that cannot seek (it then writes data
descriptors after each entry); the small sink below hands over whatever zipfile wrote so far, so a
multi-gigabyte batch downloads with constant memory. No extra package needed for that.
"""
from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Iterator

_BLOCK = 1 << 20


class _Sink:
    """A write-only, unseekable file object collecting zipfile's output between yields."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def zip_folder_stream(folder: Path, *, root: str) -> Iterator[bytes]:
    """Yield a zip of every file in `folder` (sorted, under `root/`), piece by piece."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
            info = zipfile.ZipInfo(f"{root}/{path.name}", date_time=_mtime(path))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as entry, open(path, "rb") as source:
                for block in iter(lambda: source.read(_BLOCK), b""):
                    entry.write(block)
                    yield sink.take()
    yield sink.take()


def _mtime(path: Path) -> tuple[int, int, int, int, int, int]:
    return time.gmtime(max(path.stat().st_mtime, 315532800))[:6]  # zip dates start in 1980
