"""A real `airflow standalone` (scheduler, DAG processor, triggerer, API server) started through
bin/airflow-local for one test module, and a headless Chromium driven over the DevTools protocol
(websockets only, no Playwright): the helpers of the slow end-to-end tests."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx

from cabinet_leads import db

DAG_ID = "reconcile_cabinet_leads_pipeline"
AIRFLOW_LOCAL = [sys.executable, str(db.PROJECT_ROOT / "bin" / "airflow-local")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smtp_conn(port: int) -> str:
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                       "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com"}})


@contextlib.contextmanager
def standalone(tmp: Path, env: dict[str, str], timeout: float = 150) -> Iterator[SimpleNamespace]:
    """Airflow on free ports with AIRFLOW_HOME under `tmp` and `env` on top of this process's
    environment (give AIRFLOW_CONN_RECONCILE_DB and AIRFLOW_CONN_SMTP_DEFAULT); yields the REST client
    (logged in as admin: .api), .port, .home, .token and .started (monotonic). Stopped (the whole
    process session) even on failure."""
    port = free_port()
    home = tmp / "airflow"
    where = ["--home", str(home), "--run-dir", str(tmp / "run"), "--port", str(port)]
    full_env = {
        **os.environ,
        # only the runs a test triggers, no scheduled run of the hourly DAG on unpausing
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # the log servers of the scheduler and triggerer must not collide with a `make airflow`
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        **env,
    }
    full_env.pop("AIRFLOW_HOME", None)  # bin/airflow-local sets it from --home
    started = time.monotonic()
    try:
        res = subprocess.run([*AIRFLOW_LOCAL, "start", *where, "--timeout", str(timeout)],
                             env=full_env, capture_output=True, text=True, timeout=timeout + 30)
        assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
        print(f"\nairflow standalone healthy after {time.monotonic() - started:.1f} s")
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            token = client.post("/auth/token", json={"username": "admin", "password": password})
            assert token.status_code in (200, 201), token.text
            access = token.json()["access_token"]
            client.headers["Authorization"] = f"Bearer {access}"
            deadline = time.monotonic() + 90
            while not client.get(f"/api/v2/dags/{DAG_ID}").is_success:
                assert time.monotonic() < deadline, "the DAG was not parsed within 90 s"
                time.sleep(0.5)
            assert client.get("/api/v2/importErrors").json()["total_entries"] == 0
            yield SimpleNamespace(api=client, port=port, home=home, token=access, started=started,
                                  url=f"http://127.0.0.1:{port}")
    finally:
        res = subprocess.run([*AIRFLOW_LOCAL, "stop", *where], env=full_env, capture_output=True, text=True,
                             timeout=60)
        print(res.stdout + res.stderr, end="")
        print(f"(airflow log: {tmp / 'run' / 'airflow.log'})")


class Chromium:
    """Headless Chromium with one page, driven over the DevTools protocol: real mouse and keyboard
    events, so React components see what a user's clicks and keys would give them."""

    def __init__(self, executable: str, profile: Path):
        from websockets.sync.client import connect

        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.proc.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(p for p in pages if p["type"] == "page")
        self._connection = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.ws = self._connection.__enter__()
        self.ids = itertools.count(1)

    def send(self, method: str, **params):
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == i:
                assert "error" not in message, f"{method}: {message['error']}"
                return message["result"]

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_js(self, expression: str, timeout: float = 30):
        """Wait until the JS expression is truthy (its value must be JSON: no DOM elements)."""
        deadline = time.monotonic() + timeout
        while not (value := self.js(expression)):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.2)
        return value

    def click(self, element: str) -> None:
        """A real left click in the middle of the element the JS expression `element` finds."""
        x, y = self.js(
            f"(() => {{ const e = {element}; e.scrollIntoView({{block: 'center'}}); "
            "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type(self, text: str) -> None:
        self.send("Input.insertText", text=text)

    def key(self, name: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=name, code=name, windowsVirtualKeyCode=code)

    def screenshot(self, path: Path) -> None:
        import base64

        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot")["data"]))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._connection.__exit__(None, None, None)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
