"""bin/airflow-local checks every port Airflow will bind before it starts anything, and names the
bind error when start-up fails anyway."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import socket
import subprocess
import sys

from cabinet_leads import db

SCRIPT = db.PROJECT_ROOT / "bin" / "airflow-local"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(tmp_path, **env) -> subprocess.CompletedProcess:
    where = ["--home", str(tmp_path / "home"), "--run-dir", str(tmp_path / "run"), "--mail-dir", str(tmp_path / "mail")]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__LOGGING__"))}
    full_env.pop("AIRFLOW_PORT", None)
    full_env.pop("AIRFLOW_SMTP_PORT", None)
    full_env.update(env)
    return subprocess.run([sys.executable, str(SCRIPT), "start", *where], env=full_env, capture_output=True,
                          text=True, timeout=60)


def test_api_port_on_the_log_server_port_is_refused_before_anything_starts(tmp_path):
    res = start(tmp_path, AIRFLOW_PORT="8793", AIRFLOW_SMTP_PORT=str(free_port()),
                AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()))
    assert res.returncode != 0
    assert ("port 8793 is given to both the API server and UI (AIRFLOW_PORT (or --port)) and the scheduler's "
            "log server (AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT)") in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "home").exists() and not (tmp_path / "run" / "airflow.pid").exists()


def test_a_taken_port_is_named_with_the_setting_to_change(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = start(tmp_path, AIRFLOW_PORT=str(free_port()), AIRFLOW_SMTP_PORT=str(free_port()),
                    AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
                    AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(port))
    assert res.returncode != 0
    line = [ln for ln in res.stderr.splitlines() if f"port {port}" in ln]
    assert line and "the triggerer's log server is not free" in line[0]
    assert "set AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT to another port" in line[0]
    assert not (tmp_path / "home").exists()


def test_the_smtp_port_is_checked_too(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = start(tmp_path, AIRFLOW_PORT=str(free_port()), AIRFLOW_SMTP_PORT=str(port),
                    AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
                    AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()))
    assert res.returncode != 0 and "set AIRFLOW_SMTP_PORT to another port" in res.stderr


def test_bind_errors_are_found_in_the_log(tmp_path):
    loader = importlib.machinery.SourceFileLoader("airflow_local_under_test", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    log = tmp_path / "airflow.log"
    # what asyncio (Airflow's log servers) and uvicorn (the API server) write when a port is taken
    log.write_text(
        "scheduler | starting\n"
        "triggerer | OSError: [Errno 98] error while attempting to bind on address ('0.0.0.0', 8794): "
        "address already in use\n"
        "api-server | ERROR:    [Errno 98] Address already in use\n"
        "scheduler | all good\n"
    )
    errors = module.bind_errors(log)
    assert len(errors) == 2 and "8794" in errors[0] and "api-server" in errors[1]
