"""Annotators under load: next-item + submit cycles against gunicorn on PostgreSQL, over loopback.

Creates its own database (`bench_annotate` on the server of DATABASE_URL, default
postgres://postgres@127.0.0.1:5432), migrates it, creates --annotators annotators with API tokens
and enough ready items, and serves the site with gunicorn (gunicorn.conf.py, DEBUG off). Then, for each N in
--clients (default 1, 8, 32), N simulated annotators run cycles for --duration seconds, each on its
own keep-alive connection (threads spread over --client-processes load-generator processes). One
cycle is one item rated. By default (--cycle one-request, what the annotate page does) it is ONE
request, a submit that also claims and returns the next item:

    POST /api/assignments/<id>/comparison/ {"chosen": "A", "rating": "better", "next": {}}

(each annotator's first item comes from POST /api/annotate/next/, outside the timed cycles).
With --cycle two-requests it is the older pair of requests, for comparison:

    POST /api/annotate/next/                  (claim: SELECT ... FOR UPDATE SKIP LOCKED)
    POST /api/assignments/<id>/comparison/    (submit)

Each N runs as a closed loop: an annotator starts the next cycle as soon as the last one ends,
which measures the most the server can do (and, by Little's law, fixes the mean latency at N
divided by the cycles/s: 160 ms for 32 annotators at 200 cycles/s). Then the largest N runs once
more paced: the annotators together offer --paced-rate cycles/s (default: the target's 200), each
cycle timed from when it was due, so the latency annotators see at that load is measured without
the load generator slowing down with a slow server.

It prints cycles/s and the p50/p95/p99 latency of a whole cycle, the throughput ratio against the
N=1 baseline measured in the same run and against the target (200 cycles/s, p95 < 100 ms at
N=32), then checks in the database that no item was over-assigned and that every acknowledged
submit is stored exactly once. The database is dropped at the end (--keep to keep it).

--hot-path chooses what serves the cycle: the PostgreSQL functions (the default) or the ORM path
SQLite runs (ANNOTATION_DB_FUNCTIONS=false: the same rules, about ten statements a cycle instead of
three). Several run back to back, each on a fresh database, and a last table compares them.

    .venv/bin/python bench/annotate_load.py
    .venv/bin/python bench/annotate_load.py --clients 32 --hot-path functions,orm,functions,orm
    .venv/bin/python bench/annotate_load.py --clients 32 --workers 3 --threads 16 --duration 20
    .venv/bin/python bench/annotate_load.py --clients 32 --paced-rate 250   # latency at 250 cycles/s offered
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_CYCLES_PER_S = 200
TARGET_P95_MS = 100
CYCLES = {
    "one-request": "ONE request per item (submit with \"next\": {} returns the next item; the first comes from /api/annotate/next/)",
    "two-requests": "TWO requests per item (POST /api/annotate/next/, then a plain submit)",
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,8,32", help="comma-separated numbers of simultaneous annotators")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of cycles per N (after 1 s warm-up)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--cycle", choices=["one-request", "two-requests"], default="one-request",
                        help="one-request: submit claims the next item (as the page does); two-requests: next, then submit")
    parser.add_argument("--client-processes", type=int, default=4, help="load-generator processes (threads spread over them)")
    parser.add_argument("--paced-rate", type=float, default=TARGET_CYCLES_PER_S,
                        help="after the closed loops, run the largest N once more offering this many cycles/s in "
                             "total (0: no paced run)")
    parser.add_argument("--items", type=int, default=0, help="ready items to create (default: enough for 600 cycles/s)")
    parser.add_argument("--overlap", type=int, default=1, help="annotators per item")
    parser.add_argument("--gold-rate", type=float, default=0.0,
                        help="share of claims that serve a gold item (quality control; 0: none, as before)")
    parser.add_argument("--gold-items", type=int, default=2000, help="gold items to create when --gold-rate > 0")
    parser.add_argument("--hot-path", default="functions",
                        help="comma-separated: functions (PostgreSQL functions, the default), orm (the ORM path); "
                             "several run back to back, each on a fresh database, e.g. functions,orm,functions,orm")
    parser.add_argument("--database", default="bench_annotate")
    parser.add_argument("--server", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--port", type=int, default=0, help="gunicorn port (default: a free one)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    return parser.parse_args(argv)


def admin_connection(server_url: str):
    import dj_database_url
    import psycopg2

    config = dj_database_url.parse(server_url)
    conn = psycopg2.connect(
        dbname=config["NAME"] or "postgres", user=config["USER"], password=config["PASSWORD"] or None,
        host=config["HOST"], port=config["PORT"] or 5432,
    )
    conn.autocommit = True
    return conn


def run_admin_sql(args, *statements: str) -> None:
    # DROP/CREATE DATABASE cannot run in a transaction: plain autocommit statements, no `with conn`.
    conn = admin_connection(args.server)
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        conn.close()


def recreate_database(args) -> str:
    run_admin_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)', f'CREATE DATABASE "{args.database}"')
    return args.server.rsplit("/", 1)[0] + "/" + args.database


def drop_database(args) -> None:
    run_admin_sql(args, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


def vacuum_if_autovacuum_is_off(database_url: str) -> bool:
    """VACUUM the queue tables when the server's autovacuum is off (as on the development machine).

    Every claim and submit leaves dead row versions in the claim index; autovacuum (on by default in
    production) clears them as they pile up, and without it each phase would start slower than the
    last for a reason no deployment has. Returns whether it vacuumed.
    """
    conn = admin_connection(database_url)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW autovacuum")
            if cursor.fetchone()[0] == "on":
                return False
            cursor.execute("VACUUM (ANALYZE) annotation_item, annotation_assignment, annotation_comparison")
            return True
    finally:
        conn.close()


def site_environment(database_url: str, var_dir: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-annotate-load",
        "EXPORT_PSEUDONYM_KEY": "bench-annotate-load",
        # Served over plain HTTP on loopback: no redirect to HTTPS.
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "VAR_DIR": var_dir,
        "DB_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "annotation_site.settings",
        "PYTHONWARNINGS": "ignore",
    }


def prepare(args, annotators: int, items: int) -> list[str]:
    """Migrate, create annotators with tokens and ready items; returns the tokens."""
    import django
    from django.core.management import call_command

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from annotation_site.accounts.models import AnnotatorProfile
    from annotation_site.annotation.imports import PreferencePair, preferences_import

    call_command("migrate", verbosity=0)
    group = Group.objects.get(name="annotator")
    tokens = []
    for index in range(annotators):
        user = get_user_model().objects.create(username=f"bench-annotator-{index}")
        user.groups.add(group)
        AnnotatorProfile.objects.create(user=user)
        tokens.append(Token.objects.create(user=user).key)
    pairs = [
        PreferencePair(
            turns=[{"role": "user", "content": f"Question {i}: how do I keep basil alive on a windowsill?"}],
            chosen="Water when the top centimetre of soil is dry, give it 6 hours of sun, and pinch off flower buds.",
            rejected="Basil is a plant.",
        )
        for i in range(items)
    ]
    preferences_import(pairs=pairs, guideline_kind="helpfulness", source_name="bench", as_items=True)
    from annotation_site.annotation.models import Item, ItemStatus

    Item.objects.update(overlap=args.overlap, open_slots=args.overlap)
    if args.gold_rate > 0:
        from annotation_site.quality.models import GuidelineQuality

        # Gold items with the same shape as the others; every annotator is served each once.
        preferences_import(pairs=pairs[: args.gold_items], guideline_kind="helpfulness", source_name="bench-gold", as_items=True, as_gold=True)
        GuidelineQuality.objects.create(guideline_kind="helpfulness", gold_rate=args.gold_rate, too_fast_ms=0)
        print(f"gold: {Item.objects.filter(status=ItemStatus.GOLD).count()} gold items, served at {args.gold_rate:.0%} of claims")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh tables: give the planner real row counts, as autovacuum would
    return tokens


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(args, env: dict, port: int) -> subprocess.Popen:
    # gunicorn.conf.py (the production settings) is read from ROOT; the bind and sizes are the bench's.
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"), "annotation_site.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--threads", str(args.threads),
        "--log-level", "warning",
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/accounts/login/")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not answer within 30 s")


class Annotator(threading.Thread):
    """One simulated annotator on one keep-alive connection.

    "one-request" cycles (what the annotate page does): the first item comes from the next-item
    endpoint, then each cycle is ONE request, a submit that also claims the next item
    (`"next": {}`). "two-requests" cycles: next item, then a plain submit, as before that existed.
    """

    def __init__(self, port: int, token: str, cycle: str, start_at: float, measure_from: float, stop_at: float,
                 interval: float = 0.0):  # fmt: skip
        super().__init__(daemon=True)
        self.port, self.token, self.cycle, self.interval = port, token, cycle, interval
        self.start_at, self.measure_from, self.stop_at = start_at, measure_from, stop_at
        self.latencies_ms: list[float] = []
        self.comparison_ids: list[int] = []
        self.errors: list[str] = []
        self.ran_dry = False

    def post(self, conn, path: str, body: dict) -> tuple[int, dict]:
        conn.request("POST", path, body=json.dumps(body), headers={
            "Authorization": f"Token {self.token}", "Content-Type": "application/json", "Accept": "application/json",
        })
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")

    def next_item(self, conn) -> dict | None:
        status, claimed = self.post(conn, "/api/annotate/next/", {})
        if status != 200:
            raise RuntimeError(f"next: {status} {claimed}")
        return claimed["assignment"]

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        answer = {"chosen": "A", "rating": "better", "active_ms": 1000}
        if self.cycle == "one-request":
            answer["next"] = {}
        while time.monotonic() < self.start_at:
            time.sleep(0.001)
        assignment = None
        # Paced: cycles are due every `interval` seconds from a random phase; a late cycle is timed
        # from when it was due (waiting for a busy server counts), so a slow server is not hidden by
        # the load generator slowing down with it.
        due = self.start_at + random.uniform(0, self.interval)
        while (started := time.monotonic()) < self.stop_at:
            if self.interval:
                if started < due:
                    time.sleep(due - started)
                started, due = due, due + self.interval
            try:
                if assignment is None:  # the first item, every item of a two-request cycle, and after an error
                    assignment = self.next_item(conn)
                    if assignment is None:
                        self.ran_dry = True
                        return
                status, stored = self.post(conn, f"/api/assignments/{assignment['id']}/comparison/", answer)
                assignment = None
                if status != 201:
                    self.errors.append(f"submit: {status} {stored}")
                    continue
                if self.cycle == "one-request":
                    assignment = stored["next"]["assignment"]
                    if assignment is None:
                        self.ran_dry = True
            except (OSError, http.client.HTTPException, RuntimeError) as error:
                self.errors.append(f"{error!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                assignment = None
                continue
            self.comparison_ids.append(stored["id"])
            if started >= self.measure_from:
                self.latencies_ms.append((time.monotonic() - started) * 1000)
            if self.ran_dry:
                return
        conn.close()


def run_annotators(port: int, tokens: list[str], cycle: str, start_at: float, measure_from: float, stop_at: float,
                   interval: float) -> dict:  # fmt: skip
    """Run one thread per token in this process (a load-generator process); returns what they measured.

    The load generator runs on the same 2 cores as the server, so it is kept lean (http.client on
    keep-alive connections, a few processes so no one GIL serialises it) and its CPU is reported.
    """
    cpu_before = time.process_time()
    threads = [Annotator(port, token, cycle, start_at, measure_from, stop_at, interval) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=stop_at - time.monotonic() + 60)
    return {
        "latencies_ms": [ms for thread in threads for ms in thread.latencies_ms],
        "comparison_ids": [pk for thread in threads for pk in thread.comparison_ids],
        "errors": [error for thread in threads for error in thread.errors],
        "ran_dry": any(thread.ran_dry for thread in threads),
        "cpu_s": time.process_time() - cpu_before,
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def server_cpu_seconds(server: subprocess.Popen, database: str) -> tuple[float, float]:
    """CPU seconds used so far by gunicorn (master and workers) and by the PostgreSQL backends of the bench database."""
    import psutil

    def used(process) -> float:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            return 0.0
        return times.user + times.system

    master = psutil.Process(server.pid)
    web = sum(used(process) for process in [master, *master.children(recursive=True)])
    database_backends = [
        process for process in psutil.process_iter(["cmdline"])
        if " ".join(process.info["cmdline"] or []).startswith("postgres:") and f" {database} " in " ".join(process.info["cmdline"] or [])
    ]
    return web, sum(used(process) for process in database_backends)


def run_phase(pool, processes: int, port: int, tokens: list[str], clients: int, duration: float, cycle: str,
              rate: float) -> dict:  # fmt: skip
    start_at = time.monotonic() + 1.0  # CLOCK_MONOTONIC is system-wide: the processes share it
    measure_from = start_at + 1.0  # one second of warm-up per phase is not measured
    stop_at = measure_from + duration
    processes = min(clients, processes)
    shares = [tokens[i:clients:processes] for i in range(processes)]
    interval = clients / rate if rate else 0.0  # each annotator's time between cycles when paced
    futures = [pool.submit(run_annotators, port, share, cycle, start_at, measure_from, stop_at, interval) for share in shares]
    parts = [future.result() for future in futures]
    latencies = [ms for part in parts for ms in part["latencies_ms"]]
    return {
        "clients": clients,
        "cycles": len(latencies),
        "cycles_per_s": len(latencies) / duration,
        "p50": percentile(latencies, 0.50) if latencies else float("nan"),
        "p95": percentile(latencies, 0.95) if latencies else float("nan"),
        "p99": percentile(latencies, 0.99) if latencies else float("nan"),
        "mean": statistics.fmean(latencies) if latencies else float("nan"),
        "errors": [error for part in parts for error in part["errors"]],
        "comparison_ids": [pk for part in parts for pk in part["comparison_ids"]],
        "ran_dry": any(part["ran_dry"] for part in parts),
        "client_cpu_s": sum(part["cpu_s"] for part in parts),
    }


def verify(acknowledged: list[int]) -> list[str]:
    """No item over-assigned, every acknowledged submit stored once, nothing stored unacknowledged."""
    from django.db import connection
    from django.db.models import Count, F

    from annotation_site.annotation.models import Assignment, Comparison, Item

    connection.close()  # a fresh connection sees everything gunicorn committed
    problems = []
    # Gold items are served to every annotator once, whatever their overlap: checked apart.
    over_assigned = (
        Assignment.objects.exclude(status__in=["skipped", "expired"]).exclude(item__status="gold").values("item_id", "item__overlap")
        .annotate(n=Count("id")).filter(n__gt=F("item__overlap")).count()
    )
    if over_assigned:
        problems.append(f"{over_assigned} item(s) over-assigned")
    gold_twice = Assignment.objects.filter(item__status="gold").values("item_id", "annotator_id").annotate(n=Count("id")).filter(n__gt=1).count()
    if gold_twice:
        problems.append(f"{gold_twice} gold item(s) given twice to one annotator")
    over_compared = Comparison.objects.exclude(item__status="gold").values("item_id", "item__overlap").annotate(n=Count("id")).filter(n__gt=F("item__overlap")).count()
    if over_compared:
        problems.append(f"{over_compared} item(s) with more comparisons than their overlap")
    if Item.objects.exclude(status="gold").filter(open_slots__gt=F("overlap")).exists():
        problems.append("open_slots above overlap")
    stored = set(Comparison.objects.values_list("id", flat=True))
    if len(acknowledged) != len(set(acknowledged)):
        problems.append("the same comparison id was acknowledged twice")
    if set(acknowledged) != stored:
        problems.append(f"{len(set(acknowledged) ^ stored)} comparison(s) acknowledged but not stored, or stored but not acknowledged")
    return problems


HOT_PATHS = {
    "functions": "PostgreSQL functions (one call each for token auth, submit and claim)",
    "orm": "the ORM path (ANNOTATION_DB_FUNCTIONS=false: the queries SQLite runs, with SKIP LOCKED)",
}


def run_hot_path(args, hot_path: str, clients: list[int], phases: list[tuple[int, float]], items: int) -> dict:
    """Every phase against a fresh database and gunicorn serving `hot_path`; what was measured, and
    the integrity problems found."""
    database_url = recreate_database(args)
    server = pool = None
    results, acknowledged = [], []
    with tempfile.TemporaryDirectory(prefix="bench-annotate-") as var_dir:
        env = site_environment(database_url, var_dir)
        env["ANNOTATION_DB_FUNCTIONS"] = "true" if hot_path == "functions" else "false"
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "DEBUG", "SECRET_KEY", "EXPORT_PSEUDONYM_KEY", "VAR_DIR", "DJANGO_SETTINGS_MODULE")})
        try:
            started = time.monotonic()
            tokens = prepare(args, max(clients), items)
            print(f"\nhot path: {HOT_PATHS[hot_path]}", flush=True)
            print(f"prepared {items} items and {max(clients)} annotators in {time.monotonic() - started:.1f} s; "
                  f"gunicorn {args.workers} workers x {args.threads} threads (gthread), {os.cpu_count()} cores", flush=True)
            port = args.port or free_port()
            server = start_gunicorn(args, env, port)
            pool = ProcessPoolExecutor(args.client_processes, mp_context=multiprocessing.get_context("spawn"))
            list(pool.map(time.sleep, [0.1] * args.client_processes))  # start the load generators before timing
            print(f"cycle: {CYCLES[args.cycle]}; load generator: {args.client_processes} processes", flush=True)
            print(f"{'N':>3} {'load':>11} {'cycles':>7} {'cycles/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'vs N=1':>7}  errors",
                  flush=True)
            for index, (n, rate) in enumerate(phases):
                if vacuum_if_autovacuum_is_off(database_url) and index == 0:
                    print("(autovacuum is off on this server: the queue tables are VACUUMed before each phase, as it would)", flush=True)
                web_before, db_before = server_cpu_seconds(server, args.database)
                result = run_phase(pool, args.client_processes, port, tokens, n, args.duration, args.cycle, rate)
                result["rate"] = rate
                cycles_all = len(result["comparison_ids"]) or 1
                web_after, db_after = server_cpu_seconds(server, args.database)
                result["web_cpu_ms"] = (web_after - web_before) * 1000 / cycles_all
                result["db_cpu_ms"] = (db_after - db_before) * 1000 / cycles_all
                result["server_cpu_ms"] = result["web_cpu_ms"] + result["db_cpu_ms"]
                result["client_cpu_ms"] = result["client_cpu_s"] * 1000 / cycles_all
                results.append(result)
                acknowledged += result["comparison_ids"]
                baseline = results[0]["cycles_per_s"] or float("nan")
                load = f"paced {rate:g}/s" if rate else "closed loop"
                print(f"{n:>3} {load:>11} {result['cycles']:>7} {result['cycles_per_s']:>9.1f} {result['p50']:>8.1f} "
                      f"{result['p95']:>8.1f} {result['p99']:>8.1f} {result['cycles_per_s'] / baseline:>6.2f}x  "
                      f"{len(result['errors'])}{' (ran out of items)' if result['ran_dry'] else ''}", flush=True)
                print(f"    CPU per cycle: {result['web_cpu_ms']:.1f} ms gunicorn + {result['db_cpu_ms']:.1f} ms PostgreSQL, "
                      f"{result['client_cpu_ms']:.1f} ms load generator; load average {os.getloadavg()[0]:.1f}", flush=True)
                for error in result["errors"][:5]:
                    print(f"    {error}")
        finally:
            if pool is not None:
                pool.shutdown()
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
        problems = verify(acknowledged)
    closed = [result for result in results if not result["rate"]][-1]
    # What the measured CPU cost per cycle would allow if the server had every core to itself;
    # on a shared machine the measured cycles/s above is lower than this.
    print(f"server CPU per cycle at N={closed['clients']}: {closed['server_cpu_ms']:.1f} ms -> at most "
          f"{os.cpu_count() * 1000 / closed['server_cpu_ms']:.0f} cycles/s on {os.cpu_count()} otherwise idle cores "
          f"(before the load generator's own {closed['client_cpu_ms']:.1f} ms)")
    print(f"target at N={closed['clients']}, closed loop: {closed['cycles_per_s'] / TARGET_CYCLES_PER_S:.2f}x of "
          f"{TARGET_CYCLES_PER_S} cycles/s; p95 {closed['p95']:.1f} ms, where Little's law puts the mean at "
          f"N / throughput = {1000 * closed['clients'] / closed['cycles_per_s']:.0f} ms")
    paced = [result for result in results if result["rate"]]
    for result in paced:
        print(f"target at N={result['clients']}, paced at {result['rate']:g} cycles/s offered: {result['cycles_per_s']:.1f} cycles/s "
              f"served, p95 {result['p95']:.1f} ms (target < {TARGET_P95_MS} ms)")
    print("integrity: " + ("no item over-assigned, every acknowledged submit stored exactly once" if not problems else "; ".join(problems)))
    from django.db import connections

    connections.close_all()
    if not args.keep:
        drop_database(args)
    return {"hot_path": hot_path, "closed": closed, "paced": paced[-1] if paced else None, "problems": problems}


def compare_hot_paths(runs: list[dict]) -> None:
    """Each hot path's figures at the largest N side by side, and their ratio to the first one's."""
    print(f"\n{'hot path':>10} {'closed cycles/s':>16} {'CPU ms/cycle':>13} {'paced cycles/s':>15} {'paced p95 ms':>13} {'vs first':>9}")
    first = runs[0]["closed"]
    for run in runs:
        closed, paced = run["closed"], run["paced"]
        print(f"{run['hot_path']:>10} {closed['cycles_per_s']:>16.1f} {closed['server_cpu_ms']:>13.1f} "
              f"{paced['cycles_per_s'] if paced else float('nan'):>15.1f} {paced['p95'] if paced else float('nan'):>13.1f} "
              f"{closed['cycles_per_s'] / first['cycles_per_s']:>8.2f}x")


def main(argv=None) -> int:
    args = parse_args(argv)
    clients = [int(n) for n in args.clients.split(",")]
    phases = [(n, 0.0) for n in clients] + ([(max(clients), args.paced_rate)] if args.paced_rate else [])
    items = args.items or int(600 * args.duration * len(phases) + 1000)
    hot_paths = args.hot_path.split(",")
    unknown = set(hot_paths) - set(HOT_PATHS)
    if unknown:
        raise SystemExit(f"--hot-path: unknown {', '.join(sorted(unknown))}; use {', '.join(HOT_PATHS)}")
    runs = [run_hot_path(args, hot_path, clients, phases, items) for hot_path in hot_paths]
    if len(runs) > 1:
        compare_hot_paths(runs)
    return 1 if any(run["problems"] for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
