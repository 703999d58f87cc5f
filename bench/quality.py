"""Seconds and peak memory of the quality report over many comparisons, against a naive loop.

Fills a separate PostgreSQL database (`bench_quality` on the server of DATABASE_URL) with SQL
(generate_series): --annotators annotators (default 1,000), items rated by two of them each, and
--comparisons comparisons (default 1,000,000) with ratings, times and shown orders, 1% of them on
gold items. The data is kept and reused by later runs of the same sizes (--refill to redo).

Then, in this one run:
- `quality.selectors.quality_report()` over everything: seconds, peak RSS above the baseline;
- the naive baseline: for each annotator, their comparisons through the ORM, and for each of those
  the other comparisons of its item (the obvious per-annotator loop), on the first
  --naive-annotators annotators, extrapolated linearly to all;
- the ratio of the two.

    .venv/bin/python bench/quality.py
    .venv/bin/python bench/quality.py --comparisons 100000 --annotators 100 --naive-annotators 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comparisons", type=int, default=1_000_000)
    parser.add_argument("--annotators", type=int, default=1_000)
    parser.add_argument("--naive-annotators", type=int, default=10)
    parser.add_argument("--database", default="bench_quality")
    parser.add_argument("--server", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--refill", action="store_true")
    return parser.parse_args(argv)


def setup_django(args) -> bool:
    """Create (or reuse) the bench database and migrate it; True when it must be filled."""
    import dj_database_url
    import psycopg2

    server = dj_database_url.parse(args.server)
    admin = psycopg2.connect(dbname=server["NAME"], user=server["USER"], host=server["HOST"], port=server["PORT"] or 5432)
    admin.autocommit = True
    with admin.cursor() as cursor:
        if args.refill:
            cursor.execute(f'DROP DATABASE IF EXISTS "{args.database}"')
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [args.database])
        fresh = cursor.fetchone() is None
        if fresh:
            cursor.execute(f'CREATE DATABASE "{args.database}"')
    admin.close()
    os.environ["DATABASE_URL"] = f"{args.server.rsplit('/', 1)[0]}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from annotation_site.annotation.models import Comparison

    return fresh or Comparison.objects.count() != args.comparisons


FILL_SQL = """
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
SELECT '!', false, 'bench-annotator-' || n, '', '', '', false, true, now() FROM generate_series(1, %(annotators)s) n;
INSERT INTO annotation_dialogue (turns, guideline_kind, source, source_name, created_at)
SELECT jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Question ' || n)),
       CASE WHEN n %% 3 = 0 THEN 'safety' ELSE 'helpfulness' END, 'pool', '', now()
  FROM generate_series(1, %(items)s) n;
INSERT INTO annotation_sample (dialogue_id, text, model_name, sampling_params, finish_reason, created_at)
SELECT d.id, 'Answer ' || side || ' to ' || d.id, 'bench', '{}', 'stop', now()
  FROM annotation_dialogue d CROSS JOIN (VALUES ('a'), ('b')) AS sides(side);
INSERT INTO annotation_item (task_kind, dialogue_id, guideline_kind, sample_a_id, sample_b_id, status, overlap, open_slots, priority, created_at)
SELECT 'comparison', d.id, d.guideline_kind, s.a, s.b, 'done', 2, 0, 0, now()
  FROM (SELECT dialogue_id, min(id) AS a, max(id) AS b FROM annotation_sample GROUP BY dialogue_id) s
  JOIN annotation_dialogue d ON d.id = s.dialogue_id;
INSERT INTO quality_golditem (item_id, better_sample_id, weakest_rating, source, created_at)
SELECT i.id, i.sample_a_id, '', 'bench', now() FROM annotation_item i WHERE i.id %% 100 = 0;
UPDATE annotation_item SET status = 'gold' WHERE id %% 100 = 0;
ANALYZE;
WITH users AS (SELECT array_agg(id ORDER BY id) AS ids FROM auth_user WHERE username LIKE 'bench-annotator-%%'),
     slots AS (SELECT i.id AS item_id, i.guideline_kind, i.sample_a_id, i.sample_b_id, k FROM annotation_item i CROSS JOIN (VALUES (0), (1)) ks(k))
INSERT INTO annotation_comparison (item_id, annotator_id, guideline_kind, chosen_id, rejected_id, rating, shown_order,
                                   chosen_is_safe, rejected_is_safe, safety_bin, time_spent_ms, source, created_at)
SELECT s.item_id, users.ids[1 + (s.item_id * 7 + s.k * 13) %% array_length(users.ids, 1)], s.guideline_kind,
       CASE WHEN hashint4((s.item_id * 2 + s.k)::int) %% 4 = 0 THEN s.sample_b_id ELSE s.sample_a_id END,
       CASE WHEN hashint4((s.item_id * 2 + s.k)::int) %% 4 = 0 THEN s.sample_a_id ELSE s.sample_b_id END,
       (ARRAY['significantly_better', 'better', 'slightly_better', 'negligibly_better'])[1 + abs(hashint4(s.item_id::int + s.k)) %% 4],
       CASE WHEN hashint4((s.item_id + 3 * s.k)::int) %% 2 = 0 THEN 'ab' ELSE 'ba' END,
       CASE WHEN s.guideline_kind = 'safety' THEN true END, CASE WHEN s.guideline_kind = 'safety' THEN false END,
       CASE WHEN s.guideline_kind = 'safety' THEN 'chosen_safe_other_unsafe' ELSE '' END,
       2000 + abs(hashint4(s.item_id::int * 5 + s.k)) %% 30000, 'annotation',
       now() - ((s.item_id %% 28) || ' days')::interval
  FROM slots s, users;
ANALYZE;
"""


def fill(args) -> None:
    from django.db import connection

    started = time.perf_counter()
    print(f"filling: {args.comparisons:,} comparisons by {args.annotators:,} annotators ...", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(FILL_SQL, {"annotators": args.annotators, "items": args.comparisons // 2})
    print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)


class PeakMemory:
    """Samples this process's RSS every 20 ms on a thread; `peak` above the baseline when started."""

    def __init__(self):
        self.process = psutil.Process()
        self.baseline = self.process.memory_info().rss
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss - self.baseline)
            time.sleep(0.02)

    def done(self) -> int:
        self.stop.set()
        self.thread.join()
        return self.peak


def naive_report(annotator_ids: list[int]) -> dict:
    """The obvious per-annotator ORM loop: each annotator's comparisons, and for each the others on its item."""
    from annotation_site.annotation.models import Comparison

    figures = {}
    for annotator_id in annotator_ids:
        rows = list(Comparison.objects.filter(annotator_id=annotator_id).select_related("item"))
        agree = pairs = shown_a = 0
        for comparison in rows:
            chose_a = comparison.chosen_id == comparison.item.sample_a_id
            shown_a += (comparison.shown_order == "ab") == chose_a
            for other in Comparison.objects.filter(item_id=comparison.item_id).exclude(pk=comparison.pk):
                pairs += 1
                agree += (other.chosen_id == other.item.sample_a_id) == chose_a
        times = [c.time_spent_ms for c in rows if c.time_spent_ms is not None]
        figures[annotator_id] = {"comparisons": len(rows), "share_a": shown_a / max(len(rows), 1),
                                 "agreement": agree / max(pairs, 1), "median": statistics.median(times) if times else None}  # fmt: skip
    return figures


def main(argv=None) -> None:
    args = parse_args(argv)
    if setup_django(args):
        from django.core.management import call_command

        call_command("flush", interactive=False, verbosity=0)
        fill(args)
    from django.contrib.auth import get_user_model

    from annotation_site.quality import selectors

    memory = PeakMemory()
    started = time.perf_counter()
    report = selectors.quality_report()
    report_s = time.perf_counter() - started
    report_peak = memory.done()
    print(f"quality_report: {report.summary['comparisons']:,} comparisons (+ gold answers) by {len(report.annotators):,} annotators"
          f" in {report_s:.1f} s, peak +{report_peak / 2**20:.0f} MiB")  # fmt: skip

    ids = list(get_user_model().objects.filter(username__startswith="bench-annotator-").order_by("id").values_list("id", flat=True))
    sample = ids[: args.naive_annotators]
    memory = PeakMemory()
    started = time.perf_counter()
    naive_report(sample)
    naive_s = (time.perf_counter() - started) * len(ids) / max(len(sample), 1)
    naive_peak = memory.done()
    print(f"naive per-annotator ORM loop: {len(sample)} of {len(ids):,} annotators, extrapolated {naive_s:.0f} s,"
          f" peak +{naive_peak / 2**20:.0f} MiB for {len(sample)}")  # fmt: skip
    print(f"ratio: the report is {naive_s / report_s:.0f}x faster than the naive loop")


if __name__ == "__main__":
    main()
