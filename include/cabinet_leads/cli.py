"""Command line: ``cabinet-leads`` (also ``python -m cabinet_leads``).

Human-readable output by default, ``--json`` for machines. Exit 0 on success; on failure one clear
line on stderr and a non-zero exit (2 for bad arguments, 1 for everything else).

Everything printed for people goes through :func:`printable`: control characters, C1 codes and
bidi overrides from the data (a lead's name, an external id) are shown escaped (``\x1b``), never
sent to the terminal. Error lines are also redacted (:func:`cabinet_leads.db.redact`): no password
of a database URL is ever printed, except by ``url --show-password``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import re
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict

import psycopg
import sqlalchemy.exc
from psycopg.rows import dict_row

from cabinet_leads import db, funnel, params
from cabinet_leads.params import RunParameter, parse_duration

log = logging.getLogger("cabinet_leads")


EXIT_LOCK_TIMEOUT = 75  # EX_TEMPFAIL: try again later


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


class NotFound(Exception):
    """The thing asked for does not exist: one line, exit 1."""


MAX_DURATION_S = 3650 * 86400


def _duration(value: str) -> int:
    """'2h', '90m', '45s' or plain seconds -> whole seconds (positive, finite, at most ten years)."""
    try:
        seconds = int(parse_duration(value, maximum_s=MAX_DURATION_S))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"a duration must be at least one second, got {value!r}")
    return seconds


def _bool(value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _checked(param: RunParameter) -> Callable[[str], object]:
    """argparse type of a run parameter: its model's check (durations parsed first), one line on error."""

    def parse(value: str):
        try:
            if param.unit == "s":
                return param.check(parse_duration(value, maximum_s=MAX_DURATION_S), label=param.cli)
            return param.check(value, label=param.cli)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _add_run_option(parser: argparse.ArgumentParser, param: RunParameter, help_extra: str = "") -> None:
    """``param``'s option (``param.cli``), its default, check and help all from cabinet_leads.params."""
    shown = ",".join(param.default) if param.choices else str(param.default).lower()
    help_text = f"{param.description}{help_extra} (default {shown}; {param.bounds_text()})"
    if param.is_flag and param.default is False:
        parser.add_argument(param.cli, dest=param.name, action="store_true", help=f"{param.description}{help_extra}")
        return
    metavar = "BOOL" if param.is_flag else "STAGES" if param.choices else "SECONDS" if param.unit == "s" else "N"
    parser.add_argument(param.cli, dest=param.name, type=_bool if param.is_flag else _checked(param),
                        default=param.default, metavar=metavar, help=help_text)


# C0 controls (tab and newline are decided per call), DEL, C1 controls, the Arabic letter mark,
# LRM/RLM, bidi embeddings/overrides/isolates, and the Unicode line and paragraph separators
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str, keep: str = "") -> str:
    """``text`` safe for a terminal: unsafe characters (except those in ``keep``) shown as ``\\x1b``/``\\u202e``."""

    def escape(m: re.Match) -> str:
        c = m.group()
        if c in keep:
            return c
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return _UNSAFE.sub(escape, text)


def _printable_data(value):
    """Strings anywhere in ``value`` (dicts, lists) made printable, newlines included."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {_printable_data(k): _printable_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable_data(v) for v in value]
    return value


def _emit(args: argparse.Namespace, data, text: str) -> None:
    if args.json:
        print(json.dumps(data, default=str, indent=2, sort_keys=False))
    else:
        print(printable(text, keep="\n"))


def _checked_url() -> str:
    """The database URL in force, after checking its schema matches this code (db.check_schema)."""
    url = db.database_url()
    db.check_schema(url)
    return url


def _positive(name: str, low: int = 1, high: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {value!r}") from None
        if n < low or (high is not None and n > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{name} must be {bounds}, got {n}")
        return n

    return parse


def _said(name: str) -> Callable[[str], str]:
    """A --why/--by text: something said, at most review.MAX_TEXT characters."""

    def parse(value: str) -> str:
        from cabinet_leads.review import MAX_TEXT

        text = value.strip()
        if not text:
            raise argparse.ArgumentTypeError(f"{name} must not be empty")
        if len(text) > MAX_TEXT:
            raise argparse.ArgumentTypeError(f"{name} is {len(text)} characters long (limit {MAX_TEXT})")
        return text

    return parse


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None


# ----------------------------------------------------------------------------- commands


def cmd_migrate(args: argparse.Namespace) -> int:
    applied = db.migrate(db.database_url())
    text = f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "schema up to date"
    _emit(args, {"applied": applied}, text)
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from cabinet_leads import synthetic

    url = db.database_url()
    db.migrate(url)
    summary = synthetic.seed(url, leads=args.leads, seed=args.seed, anchor=args.anchor, days=args.days,
                             replace_existing_data=args.replace_existing_data)
    text = (
        f"seeded {summary.leads} leads, {summary.drivers} drivers ({summary.persons} true persons), "
        f"{summary.trip_rows} daily trip rows, {summary.claims} claims in {summary.seconds:.1f} s"
    )
    _emit(args, asdict(summary), text)
    return 0


def cmd_limbo(args: argparse.Namespace) -> int:
    engine = db.make_engine(_checked_url())
    with engine.connect() as conn:
        rows = funnel.limbo_distribution(conn, recent_days=args.recent_days)
    _emit(args, [asdict(r) for r in rows], funnel.format_distribution(rows))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    engine = db.make_engine(_checked_url())
    with engine.connect() as conn:
        rows = funnel.weekly_audit(conn, weeks=args.weeks)
        deleted = funnel.deleted_links(conn)
    _emit(args, rows, funnel.format_audit(rows) + "\n" + funnel.format_deleted_links(deleted))
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from cabinet_leads.engine import progress as engine_progress
    from cabinet_leads.pipeline import STAT_KEYS, ReconcileCabinetLeadsPipeline, RunLockTimeout, RunSkipped

    engine = db.make_engine(_checked_url())
    # progress on stderr (stdout stays the result, pure JSON with --json): a bar on a terminal,
    # plain lines otherwise (and with -v, whose log lines would break a bar)
    progress = None if args.no_progress else engine_progress.for_stream(sys.stderr, bar=not args.verbose)
    pipeline = ReconcileCabinetLeadsPipeline(engine, batch_size=args.batch_size, triggered_by="cli",
                                             run_lock_timeout=args.run_lock_timeout,
                                             skip_if_running=args.skip_if_running, full=args.full,
                                             progress=progress)
    try:
        stats = pipeline.run_reconcile(
            process_recent=args.process_recent,
            recent_days=args.recent_days,
            process_limbo=args.process_limbo,
            limbo_stages=args.limbo_stages,
            dry_run=args.dry_run,
            workers=args.workers,
        )
    except RunSkipped as exc:
        print(printable(f"cabinet-leads: {exc}"), file=sys.stderr)
        return 0
    except RunLockTimeout as exc:
        return _fail(f"error: {exc}", EXIT_LOCK_TIMEOUT)
    finally:
        pipeline.progress.close()
    waited = f" (after waiting {stats['lock_wait_s']:.1f} s for another run)" if stats["lock_wait_s"] >= 0.5 else ""
    lines = [f"run {stats['run_id']}{' (dry run, rolled back)' if args.dry_run else ''} in {stats['seconds']:.1f} s"
             f"{waited}"]
    lines += [f"  {k:<22}{stats[k]:>10}" for k in STAT_KEYS]
    lines += [f"  {k:<22}{stats[k]:>10}" for k in ("new_persons", "drivers_linked", "worklist_opened",
                                                   "worklist_resolved", "batches")]
    if "limbo_after" in stats:
        lines.append("  limbo before -> after: " + ", ".join(
            f"{s} {stats['limbo_before'][s]}->{stats['limbo_after'][s]}" for s in stats["limbo_after"]))
    _emit(args, stats, "\n".join(lines))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from cabinet_leads.pipeline import ReconcileCabinetLeadsPipeline

    total, diffs = ReconcileCabinetLeadsPipeline(db.make_engine(_checked_url())).verify(max_rows=args.max_rows)
    lines = [f"kept funnel state equals the live views ({'OK' if not total else f'{total} difference(s)'})"]
    lines += [f"  lead {d.lead_id}{f' milestone {d.milestone}' if d.milestone else ''} ({d.what}): "
              f"live {json.dumps(d.live, default=str)} kept {json.dumps(d.kept, default=str)}" for d in diffs]
    if total > len(diffs):
        lines.append(f"  ... and {total - len(diffs)} more")
    _emit(args, {"differences": total, "first": [asdict(d) for d in diffs]}, "\n".join(lines))
    return 1 if total else 0


def cmd_explain(args: argparse.Namespace) -> int:
    from cabinet_leads import explain

    with psycopg.connect(db.libpq_url(_checked_url())) as conn:
        found = explain.explain_lead(conn, args.lead_id)
    if found is None:
        raise NotFound(f"no lead with id {args.lead_id}")
    if args.json:
        print(explain.to_json(found))
    else:  # names and ids are upstream data: escape what a terminal would obey
        print(printable(explain.format_explanation(_printable_data(found)), keep="\n"))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from cabinet_leads import review

    with psycopg.connect(db.libpq_url(_checked_url())) as conn:
        total, entries = review.review_queue(conn, args.limit)
    if args.json:
        print(json.dumps({"total": total, "entries": entries}, default=str, indent=2))
    else:  # names and ids are upstream data: escape what a terminal would obey
        print(printable(review.format_queue(total, _printable_data(entries)), keep="\n"))
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    import getpass

    from cabinet_leads import review

    if args.doc_is_wrong and args.link is None:
        raise UsageError("--doc-is-wrong goes with --link only")
    by = args.by
    if by is None:
        try:
            by = getpass.getuser()
        except (KeyError, OSError):
            raise UsageError("--by is required (no login name to default to)") from None
    reviewer = review.Reviewer(db.make_engine(_checked_url()))
    try:
        if args.link is not None:
            out = reviewer.link(args.lead_id, args.link, by, args.why, doc_is_wrong=args.doc_is_wrong)
        elif args.new_person:
            out = reviewer.new_person(args.lead_id, by, args.why)
        elif args.dismiss:
            out = reviewer.dismiss(args.lead_id, by, args.why)
        else:
            out = reviewer.unlink(args.lead_id, by, args.why)
    except review.DecisionRefused as exc:
        return _fail(f"refused: {_one_line(exc)}", 1)
    text = f"decision {out.decision_id}: {out.message}" if out.changed else out.message
    _emit(args, out.as_dict(), text)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cabinet_leads import report

    engine = db.make_engine(_checked_url())
    with engine.connect() as conn:
        page = report.render_html(report.collect(conn))
    path = Path(args.html).expanduser().resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {exc.strerror or exc}") from None
    _emit(args, {"html": str(path)}, str(path))
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    with psycopg.connect(db.libpq_url(_checked_url())) as conn:
        row = conn.execute(db.read_sql("reconcile/last_success.sql"), {"triggered_by": None}).fetchone()
        deleted = conn.cursor(row_factory=dict_row).execute(db.read_sql("funnel/deleted_links.sql")).fetchone()
    if row is None:
        data = {"healthy": False, "last_success": None, "max_age_seconds": args.max_age, "deleted_links": deleted}
        _emit(args, data, "UNHEALTHY: no successful reconcile run recorded\n" + funnel.format_deleted_links(deleted))
        return 1
    run_id, _started, finished, age = row
    healthy = age <= args.max_age
    data = {"healthy": healthy, "run_id": run_id, "last_success": finished, "age_seconds": age,
            "max_age_seconds": args.max_age, "deleted_links": deleted}
    word = "OK" if healthy else "UNHEALTHY"
    _emit(args, data, f"{word}: last successful run {run_id} finished {age // 60} min ago "
                      f"(limit {args.max_age // 60} min)\n" + funnel.format_deleted_links(deleted))
    return 0 if healthy else 1


def cmd_stop(args: argparse.Namespace) -> int:
    if db.configured_url():
        raise UsageError("DATABASE_URL is set: the embedded PostgreSQL is not in use, nothing to stop")
    stopped = db.stop_embedded()
    _emit(args, {"stopped": stopped}, "embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL not running")
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    url = db.database_url()
    data = {"url": url, "airflow_conn_uri": db.airflow_conn_uri(url)}
    if not args.show_password:
        data = {k: db.redact(v, url) for k, v in data.items()}
    _emit(args, data, data["airflow_conn_uri"] if args.airflow else data["url"])
    return 0


# ----------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (no usage dump) and exits 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_error_text(message)} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cabinet-leads",
        description="Reconcile the partner cabinet's driver-recruitment leads. "
        "Uses DATABASE_URL (a postgresql:// URL), or the project's embedded PostgreSQL when it is unset or empty. "
        "Commands refuse a database whose schema is not the one `migrate` builds.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("migrate", parents=[common], help="apply pending schema migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser(
        "seed", parents=[common],
        help="replace the source tables with synthetic Peruvian leads (and empty the job's derived tables)",
    )
    p.add_argument(
        "--replace-existing-data", action="store_true",
        help="also replace source data seed did not write (without it seed refuses such a database)",
    )
    p.add_argument("--leads", type=_positive("--leads", 1, 10_000_000), default=5000)
    p.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    p.add_argument("--anchor", type=_date, default=None, help="last lead date (default: today in Lima)")
    p.add_argument("--days", type=_positive("--days", 1, 3650), default=120, help="days of leads before the anchor")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("reconcile", parents=[common], help="run the job (runbook: run_reconcile)")
    # the run parameters: flags, defaults, bounds and help from cabinet_leads.params (as the API and the DAG)
    for param in params.RUN_PARAMETERS.values():
        if param.cli:
            extra = {"limbo_stages": ", comma-separated",
                     "run_lock_timeout": f", then exit {EXIT_LOCK_TIMEOUT}; 2h, 90m, 45s also work"}
            _add_run_option(p, param, extra.get(param.name, ""))
    p.add_argument("--workers", type=_positive("--workers", 1, 8), default=1,
                   help="work through the limbo backlog as N lead-id ranges in parallel, each on its own "
                        "connection, as the DAG's mapped tasks do (1-8, default 1)")
    p.add_argument("--skip-if-running", action="store_true",
                   help="when another run is going, exit 0 at once naming it (for cron)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress on stderr (default: a bar on a terminal, else a line every tenth or 10 s)")
    p.set_defaults(func=cmd_reconcile)

    p = sub.add_parser("verify", parents=[common],
                       help="compare the kept funnel state with the live views in full; exit 1 on any difference")
    p.add_argument("--max-rows", type=_positive("--max-rows", 1, 100_000), default=20, help="differences to list")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("limbo", parents=[common], help="limbo distribution (runbook 'Consultar Vista Limbo')")
    _add_run_option(p, params.RECENT_DAYS)
    p.set_defaults(func=cmd_limbo)

    p = sub.add_parser("audit", parents=[common], help="weekly 14-day funnel audit (runbook 'Auditoría Semanal')")
    p.add_argument("--weeks", type=_positive("--weeks", 1, 520), default=4)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("explain", parents=[common], help="why a lead is in its stage: links, keys, trips, claims")
    p.add_argument("lead_id", type=_positive("LEAD_ID"), metavar="LEAD_ID")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("review", parents=[common],
                       help="the review queue: AMBIGUOUS and stuck leads with their candidates, most at stake first")
    p.add_argument("--limit", type=_positive("--limit", 1, 10_000), default=20, help="entries to show (default 20)")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("resolve", parents=[common],
                       help="a reviewer's decision on a lead (audited, one transaction; as an operator, not the job)")
    p.add_argument("lead_id", type=_positive("LEAD_ID"), metavar="LEAD_ID")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--link", type=_positive("--link PERSON"), metavar="PERSON",
                        help="link the lead to this person (its free keys attach)")
    action.add_argument("--new-person", action="store_true", help="the lead becomes a person of its own")
    action.add_argument("--dismiss", action="store_true", help="spam, test sign-up, duplicate: out of the queue")
    action.add_argument("--unlink", action="store_true", help="undo a wrong link (audited)")
    p.add_argument("--why", required=True, type=_said("--why"), help="why (recorded with the decision)")
    p.add_argument("--by", default=None, type=_said("--by"), help="who decides (default: your login name)")
    p.add_argument("--doc-is-wrong", action="store_true",
                   help="with --link: the lead's DOC is wrong (it is not attached) and does not block the link")
    p.set_defaults(func=cmd_resolve)

    p = sub.add_parser("report", parents=[common], help="write the funnel dashboard as one self-contained HTML file")
    p.add_argument("--html", required=True, metavar="FILE", help="where to write the page")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("health", parents=[common], help="exit 1 when the last successful run is older than --max-age")
    p.add_argument("--max-age", type=_duration, default=7200, help="e.g. 2h, 90m (default 2h)")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("url", parents=[common], help="print the database URL in use (starts the embedded server)")
    p.add_argument("--airflow", action="store_true", help="as an Airflow connection URI")
    p.add_argument("--show-password", action="store_true", help="print the password (masked as **** by default)")
    p.set_defaults(func=cmd_url)

    p = sub.add_parser("stop", parents=[common], help="stop the embedded PostgreSQL")
    p.set_defaults(func=cmd_stop)
    return parser


def _error_text(text: str) -> str:
    """First line of ``text``, passwords masked, terminal-safe."""
    lines = str(text).strip().splitlines()
    return printable(db.redact(lines[0] if lines else ""))


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, sqlalchemy.exc.StatementError) and exc.orig is not None:
        exc = exc.orig
    return _error_text(str(exc)) or type(exc).__name__


def _fail(message: str, code: int) -> int:
    print(f"cabinet-leads: {message}", file=sys.stderr)
    return code


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return db.redact(super().format(record))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    started = time.monotonic()
    try:
        return args.func(args)
    except (NotFound, ValueError) as exc:
        return _fail(f"error: {_one_line(exc)}", 1)
    except UsageError as exc:
        return _fail(f"error: {_one_line(exc)}", 2)
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
        if isinstance(getattr(exc, "orig", exc), psycopg.errors.QueryCanceled):
            return _fail(f"error: statement timeout: {_one_line(exc)} (the server's or role's statement_timeout, "
                         "or CABINET_LEADS_STATEMENT_TIMEOUT)", 1)
        return _fail(f"error: cannot reach the database: {_one_line(exc)}", 1)
    except (db.DatabaseError, psycopg.Error, sqlalchemy.exc.SQLAlchemyError) as exc:
        return _fail(f"error: {_one_line(exc)}", 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # a bug: still one (redacted) line; the traceback with -v
        if args.verbose:
            print(db.redact(traceback.format_exc()), file=sys.stderr, end="")
        return _fail(f"error: unexpected {type(exc).__name__}: {_one_line(exc)} (-v shows the traceback)", 1)
    finally:
        log.info("%s took %.2f s", args.command, time.monotonic() - started)


if __name__ == "__main__":
    raise SystemExit(main())
