"""Airflow end-to-end fixtures: a migrated metadata DB, a real SMTP server (aiosmtpd) and the
reconcile_db / smtp_default connections pointing at them through AIRFLOW_CONN_* variables."""

from __future__ import annotations

import email
import email.policy
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

from cabinet_leads import db


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """`airflow db migrate` once per session (SQLite metadata DB under .local/airflow-test)."""
    os.makedirs(os.environ["AIRFLOW_HOME"], exist_ok=True)
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    res = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.fixture
def main_dag(airflow_db):
    """The project's DAGs, parsed afresh for each test: dag.test(run_conf=...) leaves the conf in
    the DAG object's params, so a shared DAG would carry one test's params into the next."""
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(db.PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags


@dataclass
class Mailbox:
    messages: list = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int = 1, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return list(self.messages)

    @staticmethod
    def body(message) -> str:
        part = message.get_body(preferencelist=("html", "plain"))
        return part.get_content() if part is not None else ""


@pytest.fixture
def smtp_server(monkeypatch):
    """A real SMTP server on 127.0.0.1 (aiosmtpd); smtp_default points at it."""
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:  # a free port (the controller's readiness check needs a real one)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                    "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com"}}),
    )
    yield box
    controller.stop()


@pytest.fixture
def reconcile_conn(db_url, job_url, monkeypatch) -> str:
    """reconcile_db points at the test's fresh PostgreSQL database as the job's least-privilege
    login (cabinet_leads_job, as in production); returns the owner's URL for arranging data."""
    monkeypatch.setenv("AIRFLOW_CONN_RECONCILE_DB", db.airflow_conn_uri(job_url))
    return db_url


def xcoms(dag_run, task_id: str) -> dict[int, object]:
    """map_index -> returned value of a task in a finished run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key="return_value")
        ).all()
        return {row.map_index: XComModel.deserialize_value(row) for row in rows}


def states(dag_run) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in dag_run.get_task_instances()}
