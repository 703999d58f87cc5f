"""Everything besides the rows that decides the bytes of an export, and the hold-out rule it states."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from annotation_site.batches.export.files import ExportError
from training.export_format import MARGIN_TABLES


@dataclass(frozen=True)
class ExportOptions:
    """Everything besides the rows that decides the bytes of an export."""

    margin_table: str
    # >= 1: hold out about this many comparisons (whole items); in (0, 1): this fraction of items;
    # 0: none. Pairs an imported file declared as its test split are held out whatever this says.
    test_size: float
    # A count never holds out more than this fraction of the comparisons.
    test_max_fraction: float
    code_version: str
    # The batch's week ("2026-W48") or None for an exported source dataset.
    batch: str | None
    # Written as the manifest's "created"; taken from the batch, never from the clock.
    created: str | None = None
    # Hold out every comparison (export_source --test-size all: a dataset that is only evaluated on).
    test_all: bool = False

    def __post_init__(self):
        if self.margin_table not in MARGIN_TABLES:
            raise ExportError(
                f'Unknown margin table "{self.margin_table}": use one of {", ".join(sorted(MARGIN_TABLES))}.'
            )
        if not (self.test_size == 0 or 0 < self.test_size < 1 or (self.test_size >= 1 and self.test_size == int(self.test_size))):
            raise ExportError(
                f"The test size must be 0 (no hold-out), a whole count >= 1 or a fraction in (0, 1), got {self.test_size:g}."
            )
        if not 0 < self.test_max_fraction <= 1:
            raise ExportError(f"The test max fraction must be in (0, 1], got {self.test_max_fraction}.")

    @classmethod
    def from_dict(cls, data: dict) -> "ExportOptions":
        return cls(**data)

    def as_dict(self) -> dict:
        return asdict(self)

    def test_rule(self) -> str:
        """The hold-out rule in words, for the manifest and the data card."""
        # Only an imported dataset (no batch) has pairs declared as test data.
        declared = "" if self.batch else "; pairs imported with --split test are always in the test split"
        if self.test_all:
            return "every comparison (--test-size all)"
        if self.test_size == 0:
            return "no hold-out" + declared
        if self.test_size < 1:
            rule = f"items whose hash of the item id falls in the lowest {self.test_size:g} of the hash range"
        else:
            rule = (
                f"about {int(self.test_size)} comparisons (at most {self.test_max_fraction:g} of the batch),"
                " whole items taken in order of a hash of the item id"
            )
        return rule + declared
