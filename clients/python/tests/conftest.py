"""Fixtures: the real agentd binary on a temporary socket and database.

The binary is $AGENTD_BIN, else <repo>/.build/debug/agentd. Each test module gets its own
daemon (and its own AGENTD_HOME, so nothing under ~/.agentd is touched).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional, TypeVar

import pytest

from agentd_client import Client

REPO = Path(__file__).resolve().parents[3]
AGENTD_BIN = Path(os.environ.get("AGENTD_BIN") or REPO / ".build" / "debug" / "agentd")

T = TypeVar("T")


def pytest_sessionstart(session: pytest.Session) -> None:
    if not (AGENTD_BIN.is_file() and os.access(AGENTD_BIN, os.X_OK)):
        pytest.exit(
            f"agentd binary not found at {AGENTD_BIN}: build it with `swift build --product agentd` "
            "or point AGENTD_BIN at one",
            returncode=2,
        )


def wait_until(predicate: Callable[[], Optional[T]], timeout: float = 10.0, what: str = "condition") -> T:
    """Polls ``predicate`` until it returns something truthy; fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Daemon:
    """One agentd process on a temporary socket and database."""

    def __init__(self, directory: str, node_timeout: Optional[int] = None) -> None:
        self.directory = directory
        self.socket = os.path.join(directory, "agentd.sock")
        self.db = os.path.join(directory, "agent_state.db")
        self.log_path = os.path.join(directory, "agentd.log")
        self.node_timeout = node_timeout
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTD_")}
        env["AGENTD_HOME"] = self.directory
        args = [str(AGENTD_BIN), "serve", "--socket", self.socket, "--db", self.db]
        if self.node_timeout is not None:
            args += ["--node-timeout", str(self.node_timeout)]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        log.close()
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"agentd exited with {self.process.returncode}: {self.log()}")
            if self._answers():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"agentd did not answer on {self.socket}: {self.log()}")
            time.sleep(0.01)

    def _answers(self) -> bool:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(1)
            sock.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            sock.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as file:
                return file.read()[-4000:]
        except OSError:
            return ""


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    # A short directory: Unix socket paths are limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="agentd-py-") as directory:
        instance = Daemon(directory)
        instance.start()
        try:
            yield instance
        finally:
            instance.stop()


@pytest.fixture
def client(daemon: Daemon) -> Iterator[Client]:
    c = Client(daemon.socket, owner="test")
    try:
        yield c
    finally:
        c.close()


def daemon_has_node_names(client: Client) -> bool:
    """Whether this daemon keeps node ``name`` (a newer daemon does)."""
    task_id = client.register_task("probe names", nodes=[{"name": "probe"}])
    node = client.task_status(task_id)["nodes"][0]
    client.cancel_task(task_id)
    return bool(node.get("name") == "probe")
