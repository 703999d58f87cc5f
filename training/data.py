"""Reading exported batch folders and source datasets into training rows, with mixing weights.

An exported folder (docs/export-format.md, written by the batches app and by `export_source`; its
names are training/export_format.py's) holds `preferences.train.jsonl` / `preferences.test.jsonl`
(TRL's conversational preference format plus metadata), `sft.jsonl` (`messages` rows),
`retracted.jsonl` and `manifest.json`. A recipe lists its data as
sources, each a folder (or, for SFT, any JSONL file of `messages` rows):

    data:
      - {path: exports/2026-W47, guidelines: [helpfulness]}     # all of it
      - {path: exports/2026-W48, guidelines: [helpfulness], weight: 2.0}   # twice over
      - {path: exports/anthropic-harmless, share: 0.1}           # 10% of the final mix

`weight` multiplies a source's row count (0.5 takes a random half, 2.0 every row twice).
`share` makes a source a fixed fraction of the final mix, which is how the paper states its
mixes (§3.2.2): the helpfulness RM sees all helpfulness data "combined with an equal portion"
of safety and open data (two sources with `share: 0.25`), the safety RM all safety data plus
Anthropic Harmless with helpfulness data "in a 90/10 proportion" (`share: 0.1`).

Pairs whose chosen response is unsafe while the other is safe are dropped (§3.2.2, "we do not
include any examples where the chosen response was unsafe and the other safe").
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config import ConfigError, build_config
from training.export_format import (
    FORMAT_VERSION,
    GUIDELINES,
    MANIFEST_FILE,
    PREFERENCE_FILES,
    RATINGS,
    RETRACTED_FILE,
    SFT_FILE,
    is_chosen_unsafe_other_safe,
)


class DataError(ValueError):
    """Data that cannot be trained on; the message names the file, line and what is wrong."""


@dataclass
class DataSource:
    """One exported folder or JSONL file in a recipe's data list."""

    path: str
    # Name used in logs and eval tables; defaults to the manifest's name or the folder's name.
    name: str | None = None
    # Keep only rows annotated under these guidelines (None keeps all).
    guidelines: list[str] | None = None
    # Multiplier on the source's row count (after filtering).
    weight: float = 1.0
    # Fraction of the final mix this source makes up, instead of a weight.
    share: float | None = None
    # Evaluate on the source's held-out split (`preferences.test.jsonl`).
    evaluate: bool = True

    def __post_init__(self) -> None:
        if self.weight <= 0:
            raise ValueError(f"weight of {self.path} must be > 0, got {self.weight}")
        if self.share is not None and not 0 < self.share < 1:
            raise ValueError(f"share of {self.path} must be between 0 and 1, got {self.share}")
        unknown = set(self.guidelines or ()) - set(GUIDELINES)
        if unknown:
            raise ValueError(f"guidelines of {self.path}: unknown {sorted(unknown)}, use {list(GUIDELINES)}")
        self.path = str(Path(self.path).expanduser())
        if self.name is None:
            self.name = _source_name(Path(self.path))


@dataclass
class MixReport:
    """What went into a mix: rows per source, and what was dropped and why."""

    rows_per_source: dict[str, int] = field(default_factory=dict)
    dropped_guideline: dict[str, int] = field(default_factory=dict)
    dropped_unsafe_chosen: dict[str, int] = field(default_factory=dict)
    dropped_retracted: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_per_source": self.rows_per_source,
            "dropped_other_guideline": self.dropped_guideline,
            "dropped_chosen_unsafe_other_safe": self.dropped_unsafe_chosen,
            "dropped_retracted": self.dropped_retracted,
        }


def parse_sources(entries: list[dict[str, Any] | str]) -> list[DataSource]:
    """Turn a config's `data` list (dicts, or bare paths) into checked DataSources."""
    if not entries:
        raise ConfigError("data: list at least one exported folder or JSONL file")
    sources = []
    for index, entry in enumerate(entries):
        values = {"path": entry} if isinstance(entry, str) else entry
        if not isinstance(values, dict):
            raise ConfigError(f"data[{index}] must be a path or a mapping, got {entry!r}")
        sources.append(build_config(DataSource, values, origin=f"data[{index}]"))
    names = [source.name for source in sources]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"data: several sources are named {', '.join(repeated)}; give each a distinct `name`")
    shares = sum(source.share or 0 for source in sources)
    if shares and (shares >= 1 or all(source.share is not None for source in sources)):
        raise ConfigError("data: shares must add up to less than 1 and at least one source must have none")
    return sources


def load_preferences(sources: list[DataSource], *, split: str = "train", seed: int = 0) -> tuple[list[dict], MixReport]:
    """Read, filter and mix the preference pairs of `split` from every source."""
    report = MixReport()
    retracted = retracted_comparisons(sources)
    per_source = {}
    for source in sources:
        rows = read_preference_file(_source_file(source, PREFERENCE_FILES[split]), default_source=source.name)
        per_source[source.name] = _filter(_without_retracted(rows, retracted, source, report), source, report)
    return _mix(sources, per_source, report, seed), report


def load_eval_splits(sources: list[DataSource]) -> tuple[dict[str, list[dict]], MixReport]:
    """The held-out pairs of every source, one split per source and guideline (as in Table 7)."""
    report = MixReport()
    retracted = retracted_comparisons(sources)
    splits: dict[str, list[dict]] = {}
    for source in sources:
        if not source.evaluate:
            continue
        path = _source_file(source, PREFERENCE_FILES["test"], required=False)
        if path is None:
            continue
        rows = read_preference_file(path, default_source=source.name)
        rows = _filter(_without_retracted(rows, retracted, source, report), source, report)
        guidelines = sorted({row.get("guideline") or "" for row in rows})
        for guideline in guidelines:
            name = f"{source.name}/{guideline}" if guideline and len(guidelines) > 1 else source.name
            splits[name] = [row for row in rows if (row.get("guideline") or "") == guideline]
    return splits, report


def load_sft(sources: list[DataSource], *, seed: int = 0) -> tuple[list[dict], MixReport]:
    """Read and mix SFT demonstrations: `sft.jsonl` of each folder, or a JSONL file of `messages` rows."""
    report = MixReport()
    per_source = {}
    for source in sources:
        path = Path(source.path)
        rows = read_sft_file(path if path.is_file() else _source_file(source, SFT_FILE), default_source=source.name)
        per_source[source.name] = _filter(rows, source, report)
    return _mix(sources, per_source, report, seed), report


def read_preference_file(path: Path, *, default_source: str) -> list[dict]:
    """Read preference rows (docs/export-format.md), checking the conversational shape of each."""
    rows = []
    for line_number, row in _read_jsonl(path):
        where = f"{path}:{line_number}"
        _check_messages(row.get("prompt"), where, "prompt", last_role="user")
        for key in ("chosen", "rejected"):
            _check_messages(row.get(key), where, key, last_role="assistant")
        rating = row.get("rating")
        if rating is not None and rating not in RATINGS:
            raise DataError(f"{where}: rating {rating!r} is not one of {list(RATINGS)} or null")
        row.setdefault("source", default_source)
        rows.append(row)
    return rows


def read_sft_file(path: Path, *, default_source: str) -> list[dict]:
    """Read SFT rows: `messages` of user/assistant turns ending with the ideal assistant answer."""
    rows = []
    for line_number, row in _read_jsonl(path):
        _check_messages(row.get("messages"), f"{path}:{line_number}", "messages", last_role="assistant")
        row.setdefault("source", default_source)
        rows.append(row)
    return rows


def retracted_comparisons(sources: list[DataSource]) -> set[int]:
    """Comparison ids that any of the folders retracts (their `retracted.jsonl`)."""
    retracted: set[int] = set()
    for source in sources:
        folder = Path(source.path)
        path = folder / RETRACTED_FILE if folder.is_dir() else None
        if path is not None and path.is_file():
            for line_number, row in _read_jsonl(path):
                if not isinstance(row.get("comparison_id"), int):
                    raise DataError(f"{path}:{line_number}: each line needs an integer comparison_id")
                retracted.add(row["comparison_id"])
    return retracted


def _without_retracted(rows: list[dict], retracted: set[int], source: DataSource, report: MixReport) -> list[dict]:
    kept = [row for row in rows if row.get("comparison_id") not in retracted] if retracted else rows
    report.dropped_retracted[source.name] = report.dropped_retracted.get(source.name, 0) + len(rows) - len(kept)
    return kept


def _filter(rows: list[dict], source: DataSource, report: MixReport) -> list[dict]:
    kept = []
    dropped_guideline = dropped_unsafe = 0
    for row in rows:
        if source.guidelines is not None and row.get("guideline") not in source.guidelines:
            dropped_guideline += 1
        elif is_chosen_unsafe_other_safe(row.get("chosen_is_safe"), row.get("rejected_is_safe")):
            dropped_unsafe += 1
        else:
            kept.append(row)
    report.dropped_guideline[source.name] = dropped_guideline
    report.dropped_unsafe_chosen[source.name] = dropped_unsafe
    return kept


def _mix(sources: list[DataSource], per_source: dict[str, list[dict]], report: MixReport, seed: int) -> list[dict]:
    """Apply weights, then size the `share` sources against the rest, then shuffle."""
    rng = random.Random(seed)
    mixed: list[dict] = []
    anchored = [source for source in sources if source.share is None]
    for source in anchored:
        taken = _take(per_source[source.name], round(source.weight * len(per_source[source.name])), rng)
        report.rows_per_source[source.name] = len(taken)
        mixed.extend(taken)
    total = len(mixed) / (1 - sum(source.share or 0 for source in sources))
    for source in sources:
        if source.share is not None:
            taken = _take(per_source[source.name], round(source.share * total), rng)
            report.rows_per_source[source.name] = len(taken)
            mixed.extend(taken)
    if not mixed:
        raise DataError(f"no rows left to train on after filtering: {report.as_dict()}")
    rng.shuffle(mixed)
    return mixed


def _take(rows: list[dict], count: int, rng: random.Random) -> list[dict]:
    """`count` rows: whole copies of `rows` while they fit, then a random sample without repeats."""
    if not rows:
        return []
    copies, remainder = divmod(count, len(rows))
    return rows * copies + rng.sample(rows, remainder)


def _read_jsonl(path: Path):
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from error
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{line_number}: not valid JSON ({error.msg})") from error
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line_number}: each line must be a JSON object")
        yield line_number, row


def _check_messages(messages: Any, where: str, key: str, *, last_role: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: {key} must be a non-empty list of {{role, content}} messages")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise DataError(f"{where}: every message in {key} needs a string content, got {message!r}")
        if message.get("role") not in ("system", "user", "assistant"):
            raise DataError(f"{where}: role {message.get('role')!r} in {key} must be system, user or assistant")
    if messages[-1]["role"] != last_role:
        raise DataError(f"{where}: {key} must end with a {last_role} message, not {messages[-1]['role']}")


def _source_file(source: DataSource, filename: str, *, required: bool = True) -> Path | None:
    folder = Path(source.path)
    if not folder.is_dir():
        raise DataError(f"data source {source.path} is not an exported folder (missing or not a directory)")
    version = _manifest(folder).get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise DataError(
            f"data source {source.path} is in export format {version}, newer than this code reads ({FORMAT_VERSION}): "
            "update the training code (docs/export-format.md, Versioning)"
        )
    path = folder / filename
    if not path.is_file():
        if not required:
            return None
        raise DataError(f"data source {source.path} has no {filename}; is it an exported batch folder?")
    return path


def _manifest(folder: Path) -> dict:
    """The folder's manifest, or {} where it has none (a hand-made folder) or it is unreadable."""
    path = folder / MANIFEST_FILE
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        data = {}
    return data if isinstance(data, dict) else {}


def _source_name(path: Path) -> str:
    data = _manifest(path) if path.is_dir() else {}
    for key in ("name", "batch", "source"):
        if isinstance(data.get(key), str) and data[key]:
            return data[key]
    return path.stem if path.is_file() else path.name
