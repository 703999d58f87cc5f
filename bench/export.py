"""Rows/s and peak memory of the batch export against a naive ORM loop, on PostgreSQL.

Fills a separate database (`bench_export` on the server of DATABASE_URL, default
postgres://postgres@127.0.0.1:5432) with synthetic comparisons through COPY: one batch of
--rows comparisons (default 1,000,000) and a small batch of --small-rows, so memory can be
compared across batch sizes. The data is kept and reused by later runs with the same sizes.

Then, in this one run:
- the export (`batch_write_copy`: every file of a batch folder, jsonl + parquet + HH + manifest)
  of the small and of the big batch: rows/s, peak RSS above the baseline, the CPU time of the
  export process (all its threads: encoder, database reader, background writer) and, when the
  server runs on this machine, of the PostgreSQL backends that serve it (the joined read);
- the naive baseline: a plain ORM loop over the big batch (`for c in Comparison.objects.filter(...)`
  with attribute access to the related rows and json.dumps per row, writing the train jsonl only)
  on the first --naive-rows comparisons; its time and memory are extrapolated linearly to the
  whole batch (the queryset caches every row, and each row costs the same queries);
- the ratio of the two throughputs. Goal: >= 100k rows/s, memory flat in the batch size.

With --against PATH (a copy of another commit, e.g. `git archive <commit> | tar -x -C PATH`), the
big batch is instead exported by this checkout's code and by PATH's, alternately --repeat times
each, and the run prints the ratio of their median throughputs and whether both wrote the same
bytes: how a change to the exporter is measured on a loaded machine.

    .venv/bin/python bench/export.py                     # 1,000,000 rows (first run fills ~1 min)
    .venv/bin/python bench/export.py --rows 200000 --small-rows 20000 --naive-rows 5000
    .venv/bin/python bench/export.py --against /tmp/export-base --repeat 3
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.export_format import MANIFEST_FILE, MARGIN_TABLES, RATINGS  # noqa: E402 - after the path is set

BIG_WEEK, SMALL_WEEK = "2026-W01", "2026-W02"
WORDS = (
    "the model answers questions about cooking travel code history and science with care and detail "
    "while refusing unsafe requests politely and explaining why a safer alternative might help"
).split()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="comparisons in the big batch")
    parser.add_argument("--small-rows", type=int, default=100_000, help="comparisons in the small batch")
    parser.add_argument("--naive-rows", type=int, default=20_000, help="rows the naive loop runs on")
    parser.add_argument("--database", default="bench_export")
    parser.add_argument("--server", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--refill", action="store_true", help="drop and fill the bench database again")
    parser.add_argument("--against", type=Path, help="a checkout of other code to export the big batch with, alternately")
    parser.add_argument("--repeat", type=int, default=2, help="exports by each checkout with --against")
    for internal in ("--_measure", "--_week", "--_out"):  # one measurement in a child process
        parser.add_argument(internal, default="", help=argparse.SUPPRESS)
    parser.add_argument("--_limit", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def setup_django(args) -> None:
    import dj_database_url
    import psycopg2

    server = dj_database_url.parse(args.server)
    admin = psycopg2.connect(
        dbname=server["NAME"], user=server["USER"], host=server["HOST"], port=server["PORT"] or 5432,
        password=server["PASSWORD"] or None,
    )  # fmt: skip
    admin.autocommit = True
    with admin.cursor() as cursor:
        if args.refill:
            cursor.execute(f'DROP DATABASE IF EXISTS "{args.database}"')
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [args.database])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{args.database}"')
    admin.close()
    base = args.server.rsplit("/", 1)[0]
    os.environ["DATABASE_URL"] = f"{base}/{args.database}"
    os.environ["DB_CONN_MAX_AGE"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# --- filling the database with COPY -------------------------------------------------------------


def _copy_value(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    elif isinstance(value, dt.datetime):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_rows(model, rows, total: int, label: str) -> None:
    """COPY dicts of column values into the model's table; missing columns get the field default."""
    from django.db import connection

    fields = model._meta.concrete_fields
    columns = [field.column for field in fields]
    defaults = {}
    for field in fields:
        default = field.get_default() if field.has_default() else None
        defaults[field.attname] = default
    buffer = io.StringIO()
    sent = 0

    def flush():
        buffer.seek(0)
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(
                f'COPY "{model._meta.db_table}" ({", ".join(columns)}) FROM STDIN', buffer
            )
        buffer.seek(0)
        buffer.truncate()

    for row in rows:
        buffer.write("\t".join(_copy_value(row.get(f.attname, defaults[f.attname])) for f in fields))
        buffer.write("\n")
        sent += 1
        if sent % 50_000 == 0:
            flush()
            print(f"\r  {label}: {sent:,}/{total:,}", end="", file=sys.stderr, flush=True)
    flush()
    print(f"\r  {label}: {sent:,}/{total:,}", file=sys.stderr)


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def fill(args) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotation_site.accounts.models import AnnotatorProfile
    from annotation_site.annotation.models import Comparison, Dialogue, Item, Sample
    from annotation_site.batches.models import Batch
    from annotation_site.generation.models import Checkpoint

    wanted = {BIG_WEEK: args.rows, SMALL_WEEK: args.small_rows}
    have = {week: Comparison.objects.filter(batch__week=week).count() for week in wanted}
    if have == wanted:
        print(f"reusing {sum(wanted.values()):,} comparisons in {args.database}", file=sys.stderr)
        return
    print(f"filling {args.database} with {sum(wanted.values()):,} comparisons (COPY)", file=sys.stderr)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE annotation_comparison, annotation_item, annotation_sample, annotation_dialogue, "
            "batches_batch, generation_checkpoint, accounts_annotatorprofile, auth_user CASCADE"
        )
    rng = random.Random(0)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with transaction.atomic():
        users = [get_user_model().objects.create(username=f"bench{n}") for n in range(100)]
        for user in users:
            AnnotatorProfile.objects.create(user=user)
        checkpoints = [Checkpoint.objects.create(name=f"bench-{k}", path=f"/ckpt/{k}", kind="sft") for k in ("sft", "rlhf-v1")]
        batches = {week: Batch.objects.create(week=week, state="exported", cutoff=now) for week in wanted}
    total = sum(wanted.values())
    # Two annotators rate each item (overlap 2), so there are half as many items as comparisons.
    items = (total + 1) // 2

    def dialogues():
        for n in range(1, items + 1):
            turns = [{"role": "user", "content": _text(rng, 25)}]
            if n % 3 == 0:
                turns += [{"role": "assistant", "content": _text(rng, 40)}, {"role": "user", "content": _text(rng, 15)}]
            yield {"id": n, "turns": turns, "guideline_kind": "safety" if n % 4 == 0 else "helpfulness", "created_at": now}

    def samples():
        for n in range(1, items + 1):
            for side in (0, 1):
                yield {
                    "id": 2 * n - 1 + side, "dialogue_id": n, "text": _text(rng, 60 + side * 20),
                    "model_name": checkpoints[side].name, "checkpoint_id": checkpoints[side].id,
                    "sampling_params": {"temperature": 0.7 + 0.5 * side, "top_p": 0.9, "max_tokens": 512, "seed": n},
                    "created_at": now,
                }  # fmt: skip

    def item_rows():
        for n in range(1, items + 1):
            yield {
                "id": n, "dialogue_id": n, "guideline_kind": "safety" if n % 4 == 0 else "helpfulness",
                "sample_a_id": 2 * n - 1, "sample_b_id": 2 * n, "status": "done", "overlap": 2, "open_slots": 0,
                "created_at": now,
            }  # fmt: skip

    def comparisons():
        for n in range(1, total + 1):
            item = (n + 1) // 2
            safety = item % 4 == 0
            flipped = rng.random() < 0.5
            chosen, rejected = (2 * item, 2 * item - 1) if flipped else (2 * item - 1, 2 * item)
            safe = rng.choice([(True, False), (True, True), (False, False)]) if safety else (None, None)
            bins = {(True, False): "chosen_safe_other_unsafe", (True, True): "both_safe", (False, False): "both_unsafe"}
            yield {
                "id": n, "item_id": item, "annotator_id": users[n % len(users)].id,
                "guideline_kind": "safety" if safety else "helpfulness", "chosen_id": chosen, "rejected_id": rejected,
                "rating": RATINGS[n % 4], "shown_order": "ba" if flipped else "ab",
                "chosen_is_safe": safe[0], "rejected_is_safe": safe[1], "safety_bin": bins.get(safe, ""),
                "source": "annotation", "batch_id": batches[BIG_WEEK if n <= args.rows else SMALL_WEEK].id,
                "created_at": now,
            }  # fmt: skip

    with transaction.atomic():
        copy_rows(Dialogue, dialogues(), items, "dialogues")
        copy_rows(Sample, samples(), 2 * items, "samples")
        copy_rows(Item, item_rows(), items, "items")
        copy_rows(Comparison, comparisons(), total, "comparisons")
    with connection.cursor() as cursor:
        for table in ("annotation_dialogue", "annotation_sample", "annotation_item", "annotation_comparison"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
            # As autovacuum would have by export time (it may be off on a development server): else
            # the first export after a fill also pays for setting every row's hint bits.
            cursor.execute(f"VACUUM ANALYZE {table}")


# --- measuring ----------------------------------------------------------------------------------


class Sampler:
    """Calls `sample()` on a thread every `interval` seconds while in a `with` block, and once at its end."""

    interval = 0.02

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()


class PeakRss(Sampler):
    """Samples this process's resident memory every 20 ms; reports the peak above the start."""

    def __init__(self):
        super().__init__()
        self.process = psutil.Process()
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline

    def sample(self) -> None:
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def above_baseline_mib(self) -> float:
        return (self.peak - self.baseline) / 2**20


class DatabaseCpu(Sampler):
    """CPU time of the PostgreSQL backends serving `database`, when the server runs on this machine.

    The export's reader is a backend of its own, so its CPU is not in the export process's figure;
    backends are sampled every 250 ms and summed. One that exits (its connection closed) loses its
    last 250 ms, and one that lives less is missed: the figure means something for big batches.
    """

    interval = 0.25

    def __init__(self, database: str):
        super().__init__()
        self.marker = f" {database} "
        self.seen: dict[int, float] = {}
        self.sample()
        self.baseline = dict(self.seen)

    def sample(self) -> None:
        for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            backend = process.info["name"] == "postgres" and self.marker in " ".join(process.info["cmdline"] or []) + " "
            if backend and process.info["cpu_times"]:
                times = process.info["cpu_times"]
                self.seen[process.pid] = times.user + times.system

    @property
    def seconds(self) -> float | None:
        """None where no backend was seen: the server is on another machine."""
        if not self.seen:
            return None
        return sum(cpu - self.baseline.get(pid, 0.0) for pid, cpu in self.seen.items())


def measure_export(week: str, out: Path, database: str) -> tuple[float, float, int, float, float | None]:
    from annotation_site.batches import services
    from annotation_site.batches.models import Batch

    batch = Batch.objects.get(week=week)
    with PeakRss() as memory, DatabaseCpu(database) as database_cpu:
        started, cpu_started = time.perf_counter(), time.process_time()
        manifest = services.batch_write_copy(batch=batch, out_dir=out)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return seconds, memory.above_baseline_mib, manifest["comparisons"], cpu_seconds, database_cpu.seconds


def naive_export(week: str, limit: int, out: Path) -> tuple[float, float, int]:
    """What one writes first: iterate the queryset, follow relations per row, json.dumps each row."""
    from annotation_site.annotation.models import Comparison

    margins = MARGIN_TABLES["small"]
    with PeakRss() as memory:
        started = time.perf_counter()
        rows = 0
        with open(out, "w", encoding="utf-8") as handle:
            for c in Comparison.objects.filter(batch__week=week).order_by("id")[:limit]:
                row = {
                    "prompt": c.item.dialogue.turns,
                    "chosen": [{"role": "assistant", "content": c.chosen.text}],
                    "rejected": [{"role": "assistant", "content": c.rejected.text}],
                    "margin": margins.get(c.rating, 0.0),
                    "rating": c.rating or None,
                    "guideline": c.guideline_kind,
                    "chosen_is_safe": c.chosen_is_safe,
                    "rejected_is_safe": c.rejected_is_safe,
                    "safety_bin": c.safety_bin or None,
                    "comparison_id": c.id,
                    "item_id": c.item_id,
                    "annotator": c.annotator.profile.pseudonym if c.annotator else None,
                    "chosen_model": c.chosen.model_name,
                    "chosen_checkpoint": c.chosen.checkpoint.name if c.chosen.checkpoint else None,
                    "chosen_sampling": c.chosen.sampling_params,
                    "rejected_model": c.rejected.model_name,
                    "rejected_checkpoint": c.rejected.checkpoint.name if c.rejected.checkpoint else None,
                    "rejected_sampling": c.rejected.sampling_params,
                    "source": c.source,
                    "batch": week,
                }
                handle.write(json.dumps(row, sort_keys=True) + "\n")
                rows += 1
        seconds = time.perf_counter() - started
    return seconds, memory.above_baseline_mib, rows


def measure_in_child(args, kind: str, week: str, out: Path, limit: int = 0, checkout: Path = ROOT) -> dict:
    """Run one measurement in a fresh process (with `checkout`'s code), so each peak starts from the same baseline."""
    command = [
        sys.executable, str(checkout / "bench" / "export.py"), "--database", args.database, "--server", args.server,
        "--rows", str(args.rows), "--small-rows", str(args.small_rows),
        "--_measure", kind, "--_week", week, "--_out", str(out), "--_limit", str(limit),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(args) -> None:
    """Child process: one export (or the naive loop) on an already filled database; prints JSON."""
    if args._measure == "export":
        seconds, mib, rows, cpu_seconds, database_cpu_seconds = measure_export(args._week, Path(args._out), args.database)
    else:
        database_cpu_seconds = None
        started_cpu = time.process_time()
        seconds, mib, rows = naive_export(args._week, args._limit, Path(args._out))
        cpu_seconds = time.process_time() - started_cpu
    print(
        json.dumps(
            {"seconds": seconds, "mib": mib, "rows": rows, "cpu_seconds": cpu_seconds, "database_cpu_seconds": database_cpu_seconds}
        )
    )


def _seconds(value: float | None) -> str:
    return "not measured (server on another machine)" if value is None else f"{value:.1f} s"


def _file_hashes(folder: Path) -> dict[str, str]:
    return {name: entry["sha256"] for name, entry in json.loads((folder / MANIFEST_FILE).read_text())["files"].items()}


def compare_against(args, scratch: Path) -> None:
    """Export the big batch with this checkout and with --against, alternately; print the ratio."""
    checkouts = {"this checkout": ROOT, "--against": args.against.resolve()}
    rates: dict[str, list[float]] = {label: [] for label in checkouts}
    hashes: dict[str, dict[str, str]] = {}
    print(f"\nexport of the big batch by this checkout ({ROOT}) and by {checkouts['--against']}, alternately")
    print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: compare the ratio, not the figures)")
    for run in range(args.repeat):
        for label, checkout in checkouts.items():
            out = scratch / f"run-{run}-{label.strip('-').replace(' ', '-')}"
            result = measure_in_child(args, "export", BIG_WEEK, out, checkout=checkout)
            hashes[label] = _file_hashes(out)
            shutil.rmtree(out)  # a million rows take gigabytes
            rates[label].append(result["rows"] / result["seconds"])
            print(
                f"  {label:14s} run {run + 1}: {result['rows']:>9,} rows {result['seconds']:6.1f} s"
                f" {rates[label][-1]:>8,.0f} rows/s (its CPU: {result['cpu_seconds']:.1f} s,"
                f" PostgreSQL's: {_seconds(result['database_cpu_seconds'])})"
            )
    mine, theirs = (statistics.median(rates[label]) for label in checkouts)
    print(f"\nmedian rows/s: this checkout {mine:,.0f}, --against {theirs:,.0f}; ratio {mine / theirs:.3f}")
    same = hashes["this checkout"] == hashes["--against"]
    print("same bytes in every file: " + ("yes" if same else f"no: {sorted(set(hashes['this checkout'].items()) ^ set(hashes['--against'].items()))}"))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_django(args)
    if args._measure:
        measure(args)
        return
    fill(args)
    scratch = Path(tempfile.mkdtemp(prefix="bench-export-"))
    if args.against:
        try:
            compare_against(args, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    try:
        print(f"\nexport of a batch folder (jsonl + parquet + HH + SFT + manifest), PostgreSQL {args.database}")
        print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: other work slows every figure)")
        results = {}
        for label, week in (("small batch", SMALL_WEEK), ("big batch", BIG_WEEK)):
            result = results[label] = measure_in_child(args, "export", week, scratch / week)
            print(
                f"  {label:12s} {result['rows']:>9,} rows  {result['seconds']:7.1f} s"
                f"  {result['rows'] / result['seconds']:>9,.0f} rows/s  peak +{result['mib']:6.1f} MiB"
                f"  (its CPU: {result['cpu_seconds']:.1f} s, {result['rows'] / result['cpu_seconds']:,.0f} rows per CPU second;"
                f" PostgreSQL's: {_seconds(result['database_cpu_seconds'])})"
            )
        naive = measure_in_child(args, "naive", BIG_WEEK, scratch / "naive.jsonl", limit=args.naive_rows)
        big = results["big batch"]
        naive_rate = naive["rows"] / naive["seconds"]
        big_rate = big["rows"] / big["seconds"]
        print(
            f"  naive ORM    {naive['rows']:>9,} rows  {naive['seconds']:7.1f} s  {naive_rate:>9,.0f} rows/s"
            f"  peak +{naive['mib']:6.1f} MiB  (measured on the first {naive['rows']:,} rows of the big batch)"
        )
        scale = big["rows"] / naive["rows"]
        print(
            f"  naive ORM, extrapolated to {big['rows']:,} rows: {naive['seconds'] * scale:,.0f} s, "
            f"peak about +{naive['mib'] * scale:,.0f} MiB (linear: the queryset caches every row)"
        )
        print(
            f"\nspeed-up over the naive loop: {big_rate / naive_rate:.1f}x "
            f"({big_rate:,.0f} vs {naive_rate:,.0f} rows/s; goal >= 100,000 rows/s)"
        )
        print(
            f"memory, big vs small batch ({big['rows']:,} vs {results['small batch']['rows']:,} rows): "
            f"+{big['mib']:.1f} MiB vs +{results['small batch']['mib']:.1f} MiB"
        )
        print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
