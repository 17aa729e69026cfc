"""Benchmark of ReconcileCabinetLeadsPipeline.run_reconcile on a synthetic data set (figures only).

    .venv/bin/python bench/reconcile_bench.py --leads 100000 [--seed 42] [--batch-size 500] [--workers 2] [--keep]

Creates a fresh database ``bench_<N>`` (on the embedded server, or on the server of
``DATABASE_URL`` with its dbname replaced), migrates it, seeds N leads (in a child process, so the
seed's memory does not count in the client's peak RSS) and runs three phases, each with a new
pipeline object on an Engine:

* ``cold``         first run over the freshly seeded data;
* ``warm``         the same again, nothing new upstream;
* ``incremental``  after inserting 1% new leads (copies of existing leads with new ids and
                   external ids, created in the last day before the anchor: repeat sign-ups);
* ``readers``      (optional) the runbook's five SQL statements, the kept distribution and the
                   dashboard page, each the median of three.

One line per phase: wall time, leads/s (processed leads / wall s), identity batches of leads with
their median and p95 time (``pipeline.session.timings``: each batch's transaction, from load to
commit), the record-keys phases' time and records stored, median SQL statements per identity batch
(``pipeline.statements.per_batch``) and the client process's peak RSS (``ru_maxrss``, a running
maximum over the process's life). A second line gives the runbook stats and a third where the
time went (record keys, driver accounts, the limbo step with its ranges and the time they waited
for the identity lock, limbo snapshots, carry-forward, work selection, funnel state).

``--workers N`` (N > 1): the cold phase runs twice on the same seeded data (re-seeded in between),
with the limbo backlog as one range and as N ranges in parallel (the CLI's ``reconcile --workers``,
the DAG's mapped tasks), and a ``parallel:`` line compares the two limbo steps and gives the
identity lock wait; then twice more as the DAG runs it, its limbo ranges as processes of their own
(mapped tasks share no interpreter lock), with one range and with N. The later phases run with N
ranges (threads).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

import psycopg  # noqa: E402

from cabinet_leads import db  # noqa: E402
from cabinet_leads.engine import changes, funnel_state  # noqa: E402
from cabinet_leads.pipeline import STAT_KEYS, ReconcileCabinetLeadsPipeline  # noqa: E402

# processed, newly_linked, newly_driver_mapped, still_no_candidates, conflicts, errors
RUNBOOK_KEYS = STAT_KEYS


def with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(db.libpq_url(url))
    return urlunsplit(parts._replace(path="/" + dbname))


def server_url() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    return db.libpq_url(url) if url else db.start_embedded()


def admin_connect(server: str) -> psycopg.Connection:
    """An autocommit connection for create/drop database: the maintenance database ``postgres``
    (the project database may be dropped by others meanwhile), else the URL's own database."""
    try:
        return psycopg.connect(with_dbname(server, "postgres"), autocommit=True)
    except psycopg.OperationalError:
        return psycopg.connect(server, autocommit=True)


def recreate_database(server: str, name: str) -> None:
    with admin_connect(server) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')


def drop_database(server: str, name: str) -> None:
    with admin_connect(server) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def _seed_child(url: str, leads: int, seed: int, anchor: dt.date, out) -> None:
    from cabinet_leads import synthetic

    summary = synthetic.seed(url, leads=leads, seed=seed, anchor=anchor, truncate=True)
    out.put(
        (
            summary.seconds,
            summary.persons,
            summary.drivers,
            summary.trip_rows,
            summary.claims,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        )
    )


def seed_in_child(url: str, leads: int, seed: int, anchor: dt.date) -> tuple:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_seed_child, args=(url, leads, seed, anchor, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"seeding failed (exit code {proc.exitcode})")
    return result


def add_new_leads(url: str, fraction: float, seed: int, anchor: dt.datetime) -> int:
    """Copy ``fraction`` of the existing leads as new leads created in the day before ``anchor``."""
    with psycopg.connect(url) as conn:
        total = conn.execute("select count(*) from public.module_ct_cabinet_leads").fetchone()[0]
        n = max(1, round(total * fraction))
        cur = conn.execute(
            """
            with base as (select coalesce(max(id), 0) as max_id from public.module_ct_cabinet_leads),
            picked as (
                select l.*, row_number() over (order by md5(l.id::text || %(salt)s)) as rn
                from public.module_ct_cabinet_leads as l
                order by md5(l.id::text || %(salt)s)
                limit %(n)s
            ),
            fresh as (
                select
                    base.max_id + p.rn as new_id,
                    %(anchor)s::timestamptz
                        - make_interval(secs => 60 + (('x' || substr(md5(p.id::text), 1, 8))::bit(32)::bigint %% 86000))
                        as created,
                    p.first_name, p.last_name, p.phone, p.document_number, p.license_number, p.plate,
                    p.park_id, p.source
                from picked as p cross join base
            )
            insert into public.module_ct_cabinet_leads (id, external_id, lead_created_at, first_name,
                last_name, phone, document_number, license_number, plate, park_id, source, updated_at)
            select
                f.new_id, 'BENCH-' || f.new_id, f.created, f.first_name, f.last_name, f.phone,
                f.document_number, f.license_number, f.plate, f.park_id, f.source,
                f.created + interval '2 minutes'
            from fresh as f
            order by f.new_id
            """,
            {"salt": f"bench-{seed}", "n": n, "anchor": anchor},
        )
        inserted = cur.rowcount
        conn.commit()
        conn.autocommit = True
        conn.execute("analyze public.module_ct_cabinet_leads")
    return inserted


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so each phase can report its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_phase(name: str, engine, anchor: dt.datetime, batch_size: int, by_statement: bool = False,
              workers: int = 1) -> dict:
    pipe = ReconcileCabinetLeadsPipeline(engine, batch_size=batch_size, triggered_by="bench")
    sql_s: dict[str, list[float]] = {}
    if by_statement:  # time each named SQL file (execute returns once the server is done); serial runs only
        orig_run_file = pipe.session.run_file

        def timed_run_file(conn, file_name, params=None):
            t0 = time.perf_counter()
            try:
                return orig_run_file(conn, file_name, params)
            finally:
                sql_s.setdefault(file_name, []).append(time.perf_counter() - t0)

        pipe.session.run_file = timed_run_file
    parts: dict[str, float] = {}
    restore: list[tuple] = []

    def timed(attr: str, label) -> None:
        orig = getattr(pipe, attr, None)
        if orig is None:  # the pipeline has no such step (any more)
            return

        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return orig(*args, **kwargs)
            finally:
                key = label(args, kwargs) if callable(label) else label
                parts[key] = parts.get(key, 0.0) + time.perf_counter() - t0

        setattr(pipe, attr, wrapper)

    timed("snapshot_limbo", lambda a, k: f"snap_{a[2] if len(a) > 2 else k.get('phase')}")
    timed("carry_forward_unmatched", "carry_fwd")
    timed("reconcile_drivers", "drivers")
    timed("select_work_leads", "select")
    timed("alert_metrics", "alerts")
    timed("_limbo_step", "limbo")
    # the funnel-state steps are engine functions the pipeline calls through their modules
    for module, attr, label in ((changes, "mark_changes", "mark"), (funnel_state, "refresh_marked", "refresh")):
        orig_fn = getattr(module, attr)

        def fn_wrapper(*args, _orig=orig_fn, _label=label, **kwargs):
            t0 = time.perf_counter()
            try:
                return _orig(*args, **kwargs)
            finally:
                parts[_label] = parts.get(_label, 0.0) + time.perf_counter() - t0

        setattr(module, attr, fn_wrapper)
        restore.append((module, attr, orig_fn))

    hwm_ok = reset_hwm()
    t0 = time.perf_counter()
    try:
        stats = pipe.run_reconcile(anchor=anchor, workers=workers)
    finally:
        for module, attr, orig_fn in restore:
            setattr(module, attr, orig_fn)
    wall = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hwm = vm_hwm_mb() if hwm_ok else None

    timings = pipe.session.timings  # the workers' timings are merged into the run's
    lead_ms = timings.lead_batch_ms
    per_batch = pipe.statements.per_batch
    processed = stats["processed"]
    stmt = statistics.median(per_batch) if per_batch else 0
    line = (
        f"{name} {wall:.1f} s  leads/s {processed / wall:.0f}  identity batches {len(lead_ms)}  "
        f"median {pct(lead_ms, 0.5):.1f} ms p95 {pct(lead_ms, 0.95):.1f} ms  "
        f"record keys {timings.record_keys_s:.2f} s ({stats.get('record_keys_stored', 0)} stored)  "
        f"statements/batch {stmt:g} (max {max(per_batch, default=0)})  peak RSS {rss_mb:.0f} MB"
    )
    if hwm is not None:
        line += f" (phase {hwm:.0f} MB)"
    print(line, flush=True)
    runbook = " ".join(f"{k}={stats[k]}" for k in RUNBOOK_KEYS)
    extra = " ".join(
        f"{k}={stats.get(k, 0)}"
        for k in (
            "new_persons",
            "drivers_processed",
            "drivers_linked",
            "unmatched_carried_forward",
            "retries",
        )
    )
    print(f"  stats: {runbook} | {extra}", flush=True)
    batches_s = sum(lead_ms) / 1000
    drv = f"drivers {parts.get('drivers', 0):.2f} s ({len(timings.driver_batch_ms)} batches)"
    print(
        f"  time: identity batches {batches_s:.2f} s (summed over workers)  record keys {timings.record_keys_s:.2f} s  "
        f"{drv}  limbo step {parts.get('limbo', 0):.2f} s ({workers} range{'s' if workers > 1 else ''}, identity lock "
        f"wait {stats['identity_lock_wait_s']:.2f} s)  select {parts.get('select', 0):.2f} s  "
        f"carry_fwd {parts.get('carry_fwd', 0):.2f} s  limbo snapshot before {parts.get('snap_before', 0):.2f} s "
        f"after {parts.get('snap_after', 0):.2f} s  alert metrics {parts.get('alerts', 0):.2f} s  "
        f"mark changes {parts.get('mark', 0):.2f} s  funnel refresh {parts.get('refresh', 0):.2f} s "
        f"({stats.get('state_refreshed', 0)} leads)",
        flush=True,
    )
    if by_statement:
        top = sorted(sql_s.items(), key=lambda kv: -sum(kv[1]))
        print(
            "  sql: "
            + "  ".join(f"{k} {sum(v):.2f} s/{len(v)} (med {pct(v, 0.5) * 1000:.1f} ms, max {max(v) * 1000:.0f} ms)"
                       for k, v in top),
            flush=True,
        )
    stats["_limbo_s"] = parts.get("limbo", 0.0)
    return stats


def _range_child(url: str, batch_size: int, run_id: int, lo: int, hi: int, leads: int, anchor: dt.datetime,
                 out, ready, go) -> None:
    from cabinet_leads.pipeline import LeadRange

    engine = db.make_engine(url)
    try:
        pipe = ReconcileCabinetLeadsPipeline(engine, batch_size=batch_size, triggered_by="bench")
        ready.put(1)  # imported and connected: the start-up of a task is not the range's work
        go.wait()
        stats = pipe.reconcile_limbo_range(run_id, LeadRange(lo, hi, leads), anchor)
        out.put((stats["identity_lock_wait_s"], pipe.session.timings.lead_batch_ms))
    finally:
        engine.dispose()


def mapped_run(name: str, url: str, engine, anchor: dt.datetime, batch_size: int, ranges: int) -> float:
    """The DAG's run sequence with its limbo ranges as processes (mapped tasks run in processes of
    their own: no shared interpreter lock); prints one line, returns the limbo step's seconds (from
    the moment every process has started and connected to the last range's end)."""
    pipe = ReconcileCabinetLeadsPipeline(engine, batch_size=batch_size, triggered_by="bench")
    t0 = time.perf_counter()
    run_id = pipe.begin_run({"bench": name})
    pipe.reconcile_recent(run_id, anchor)
    plan = pipe.plan_limbo(anchor, max_ranges=ranges)
    ctx = multiprocessing.get_context("spawn")
    queue, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_range_child, args=(url, batch_size, run_id, r.lo, r.hi, r.leads, anchor, queue,
                                                    ready, go))
             for r in plan]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get()
    t1 = time.perf_counter()
    go.set()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    limbo_s = time.perf_counter() - t1
    pipe.finish_work(run_id, anchor)
    pipe.end_run(run_id, "success", {})
    lead_ms = [ms for _, part in results for ms in part]
    print(f"{name} {time.perf_counter() - t0:.1f} s  limbo step {limbo_s:.2f} s ({len(plan)} range(s) in processes, "
          f"identity lock wait {sum(w for w, _ in results):.2f} s)  identity batches {len(lead_ms)} median "
          f"{pct(lead_ms, 0.5):.1f} ms p95 {pct(lead_ms, 0.95):.1f} ms", flush=True)
    return limbo_s


def print_score(url: str) -> None:
    """Identities against the seeder's ground truth: persons mixing true persons, leads linked."""
    with psycopg.connect(url) as conn:
        r = conn.execute(db.read_sql("demo/score.sql")).fetchone()
    print(f"  truth: mixed persons {r[0]} of {r[1]}  leads linked {r[2]} of {r[3]} ({100 * r[2] / max(r[3], 1):.2f}%)",
          flush=True)


RUNBOOK = ROOT / "docs" / "runbook-reconcile-cabinet-leads-pipeline.md"
PLUGIN = ROOT / "plugins" / "cabinet_funnel.py"


def runbook_statements() -> list[str]:
    """The runbook's five SQL statements ("Validación" and "Troubleshooting"), as written."""
    import re

    blocks = re.findall(r"```sql\n(.*?)```", RUNBOOK.read_text(encoding="utf-8"), flags=re.S)
    return [s.strip() for b in blocks for s in b.split(";") if re.sub(r"--[^\n]*", "", s).strip()]


def time_readers(url: str, engine, repeat: int = 3) -> None:
    """Median time of each runbook statement, of the dashboard page (the plugin's app) and of the
    live limbo view versus the kept state's distribution."""
    import importlib.util

    times = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set jit = off")
        for i, sql in enumerate(runbook_statements(), 1):
            ms = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                conn.execute(sql).fetchall()
                ms.append((time.perf_counter() - t0) * 1000)
            times.append(f"runbook {i} {statistics.median(ms):.0f} ms")
        ms = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            conn.execute("select limbo_stage, count(*) from ops.v_cabinet_leads_limbo_kept group by 1").fetchall()
            ms.append((time.perf_counter() - t0) * 1000)
        times.append(f"kept distribution {statistics.median(ms):.0f} ms")
    spec = importlib.util.spec_from_file_location("cabinet_funnel_bench", PLUGIN)
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    from fastapi.testclient import TestClient

    client = TestClient(plugin.create_app(get_conn=engine.connect, require_login=False))
    ms = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        page = client.get("/")
        ms.append((time.perf_counter() - t0) * 1000)
    times.append(f"dashboard page {statistics.median(ms):.0f} ms (HTTP {page.status_code})")
    print("readers: " + "  ".join(times) + f"  (median of {repeat})", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", type=int, required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument(
        "--anchor-date",
        type=dt.date.fromisoformat,
        default=dt.date(2025, 6, 1),
        help="seed anchor day (default 2025-06-01, fixed so runs are comparable)",
    )
    ap.add_argument("--new-fraction", type=float, default=0.01)
    ap.add_argument("--by-statement", action="store_true", help="also print time per SQL file")
    ap.add_argument("--phases", default="cold,warm,incremental",
                    help="comma-separated phases to run, in order (default cold,warm,incremental); "
                    "readers: time the runbook's five statements and the dashboard page")
    ap.add_argument("--workers", type=int, default=1, choices=range(1, 9), metavar="N",
                    help="limbo ranges in parallel (1-8). With N > 1 the cold phase runs twice on the same "
                         "seeded data, with one range and with N, and prints both and the speed-up")
    ap.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = ap.parse_args(argv)

    admin_url = server_url()
    name = f"bench_{args.leads}"
    url = with_dbname(admin_url, name)
    anchor = dt.datetime.combine(args.anchor_date, dt.time(12, 0), tzinfo=dt.UTC)
    print(
        f"# database {name}  leads {args.leads}  seed {args.seed}  batch size {args.batch_size}  "
        f"anchor {anchor.isoformat()}  load {' '.join(f'{x:.2f}' for x in os.getloadavg())}  "
        f"cpus {os.cpu_count()}",
        flush=True,
    )

    recreate_database(admin_url, name)
    try:
        t0 = time.perf_counter()
        db.migrate(url)
        print(f"migrate {time.perf_counter() - t0:.1f} s", flush=True)

        secs, persons, drivers, trips, claims, child_rss = seed_in_child(
            url, args.leads, args.seed, args.anchor_date
        )
        print(
            f"seed {secs:.1f} s  leads {args.leads}  persons {persons}  drivers {drivers}  trip rows {trips}  "
            f"claims {claims}  (seed process peak RSS {child_rss / 1024:.0f} MB)",
            flush=True,
        )

        engine = db.make_engine(url)
        try:
            for phase in [p.strip() for p in args.phases.split(",") if p.strip()]:
                if phase == "readers":
                    time_readers(url, engine)
                    continue
                if phase == "incremental":
                    t0 = time.perf_counter()
                    added = add_new_leads(url, args.new_fraction, args.seed, anchor)
                    print(f"added {added} new leads in {time.perf_counter() - t0:.1f} s", flush=True)
                elif phase not in ("cold", "warm"):
                    raise SystemExit(f"unknown phase {phase!r}: choose from cold, warm, incremental, readers")
                if phase == "cold" and args.workers > 1:
                    one = run_phase("cold (1 range)", engine, anchor, args.batch_size, args.by_statement)
                    print_score(url)
                    engine.dispose()
                    seed_in_child(url, args.leads, args.seed, args.anchor_date)  # the same data again
                    many = run_phase(f"cold ({args.workers} ranges)", engine, anchor, args.batch_size,
                                     workers=args.workers)
                    print_score(url)
                    print(f"  parallel (reconcile --workers, threads): limbo step {one['_limbo_s']:.2f} s with 1 "
                          f"range, {many['_limbo_s']:.2f} s with {args.workers} ranges "
                          f"({one['_limbo_s'] / max(many['_limbo_s'], 1e-9):.2f}x); run {one['seconds']:.2f} s vs "
                          f"{many['seconds']:.2f} s; identity lock wait {many['identity_lock_wait_s']:.2f} s", flush=True)
                    # the DAG's mapped tasks: one process per range
                    limbo = {}
                    for n in (1, args.workers):
                        engine.dispose()
                        seed_in_child(url, args.leads, args.seed, args.anchor_date)
                        limbo[n] = mapped_run(f"cold mapped ({n} range{'s' if n > 1 else ''})", url, engine, anchor,
                                              args.batch_size, n)
                    print(f"  parallel (mapped ranges, processes): limbo step {limbo[1]:.2f} s with 1 range, "
                          f"{limbo[args.workers]:.2f} s with {args.workers} "
                          f"({limbo[1] / max(limbo[args.workers], 1e-9):.2f}x)", flush=True)
                    continue
                run_phase(phase, engine, anchor, args.batch_size, args.by_statement, workers=args.workers)
                if phase == "cold":
                    print_score(url)
        finally:
            engine.dispose()
        print(f"# load {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    finally:
        if args.keep:
            print(f"kept database {name}: {url}")
        else:
            try:
                drop_database(admin_url, name)
            except psycopg.Error as exc:  # do not hide the run's own error behind the cleanup's
                print(f"could not drop database {name}: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
