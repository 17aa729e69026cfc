"""Command line: ``cabinet-leads`` (also ``python -m cabinet_leads``).

Human-readable output by default, ``--json`` for machines. Exit 0 on success; on failure one clear
line on stderr and a non-zero exit (2 for bad arguments, 1 for everything else).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

import psycopg
import sqlalchemy.exc

from cabinet_leads import db, funnel

log = logging.getLogger("cabinet_leads")


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


def _emit(args: argparse.Namespace, data, text: str) -> None:
    if args.json:
        print(json.dumps(data, default=str, indent=2, sort_keys=False))
    else:
        print(text)


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
    summary = synthetic.seed(url, leads=args.leads, seed=args.seed, anchor=args.anchor, days=args.days)
    text = (
        f"seeded {summary.leads} leads, {summary.drivers} drivers ({summary.persons} true persons), "
        f"{summary.trip_rows} daily trip rows, {summary.claims} claims in {summary.seconds:.1f} s"
    )
    _emit(args, asdict(summary), text)
    return 0


def cmd_limbo(args: argparse.Namespace) -> int:
    engine = db.make_engine()
    with engine.connect() as conn:
        rows = funnel.limbo_distribution(conn, recent_days=args.recent_days)
    _emit(args, [asdict(r) for r in rows], funnel.format_distribution(rows))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    engine = db.make_engine()
    with engine.connect() as conn:
        rows = funnel.weekly_audit(conn, weeks=args.weeks)
    _emit(args, rows, funnel.format_audit(rows))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    if os.environ.get("DATABASE_URL"):
        raise UsageError("DATABASE_URL is set: the embedded PostgreSQL is not in use, nothing to stop")
    stopped = db.stop_embedded()
    _emit(args, {"stopped": stopped}, "embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL not running")
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    url = db.database_url()
    data = {"url": url, "airflow_conn_uri": db.airflow_conn_uri(url)}
    _emit(args, data, data["airflow_conn_uri"] if args.airflow else url)
    return 0


# ----------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (no usage dump) and exits 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cabinet-leads",
        description="Reconcile the partner cabinet's driver-recruitment leads. "
        "Uses DATABASE_URL, or the project's embedded PostgreSQL when it is unset.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("migrate", parents=[common], help="apply pending schema migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("seed", parents=[common], help="fill the source tables with synthetic Peruvian leads")
    p.add_argument("--leads", type=_positive("--leads", 1, 10_000_000), default=5000)
    p.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    p.add_argument("--anchor", type=_date, default=None, help="last lead date (default: today in Lima)")
    p.add_argument("--days", type=_positive("--days", 1, 3650), default=120, help="days of leads before the anchor")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("limbo", parents=[common], help="limbo distribution (runbook 'Consultar Vista Limbo')")
    p.add_argument("--recent-days", type=_positive("--recent-days", 1, 365), default=30)
    p.set_defaults(func=cmd_limbo)

    p = sub.add_parser("audit", parents=[common], help="weekly 14-day funnel audit (runbook 'Auditoría Semanal')")
    p.add_argument("--weeks", type=_positive("--weeks", 1, 520), default=4)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("url", parents=[common], help="print the database URL in use (starts the embedded server)")
    p.add_argument("--airflow", action="store_true", help="as an Airflow connection URI")
    p.set_defaults(func=cmd_url)

    p = sub.add_parser("stop", parents=[common], help="stop the embedded PostgreSQL")
    p.set_defaults(func=cmd_stop)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    started = time.monotonic()
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"cabinet-leads: error: {exc}", file=sys.stderr)
        return 2
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
        print(f"cabinet-leads: error: cannot reach the database: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (db.DatabaseError, psycopg.Error, sqlalchemy.exc.SQLAlchemyError) as exc:
        print(f"cabinet-leads: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cabinet-leads: interrupted", file=sys.stderr)
        return 130
    finally:
        log.info("%s took %.2f s", args.command, time.monotonic() - started)


if __name__ == "__main__":
    raise SystemExit(main())
