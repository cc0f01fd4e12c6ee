"""Fixtures for the MCP tests: the real agentd daemon on a temporary socket and database, a
plain-socket client to watch it independently of MCP, and MCP sessions of `agentd mcp`
driven by the Python `mcp` package (its stdio client and ClientSession)."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO = Path(__file__).resolve().parents[2]
AGENTD_BIN = os.environ.get("AGENTD_BIN", str(REPO / ".build" / "debug" / "agentd"))


@pytest.fixture
def anyio_backend():
    return "asyncio"


def poll(what, condition, timeout=20.0, interval=0.05):
    """Calls condition() until it returns something truthy, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


async def apoll(what, condition, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await anyio.sleep(interval)


class DaemonError(Exception):
    def __init__(self, error):
        super().__init__(error.get("message"))
        self.error = error


class Daemon:
    """A running `agentd serve` and a plain client of its socket (one request a connection)."""

    def __init__(self, directory):
        self.directory = directory
        self.socket_path = os.path.join(directory, "agentd.sock")
        self.db_path = os.path.join(directory, "agent_state.db")
        self.log = open(os.path.join(directory, "daemon.log"), "wb")
        self.process = subprocess.Popen(
            [AGENTD_BIN, "serve", "--socket", self.socket_path, "--db", self.db_path],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "AGENTD_HOME": directory},
        )

        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"agentd exited at start with {self.process.returncode}")
            try:
                return self.call("Health")["status"] == "ok"
            except OSError:
                return False

        poll("agentd to answer Health", ready)

    def call(self, method, params=None):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(self.socket_path)
            request = {"id": 1, "method": method, "params": params or {}}
            s.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
        if "error" in answer:
            raise DaemonError(answer["error"])
        return answer["result"]

    def locks(self):
        return {lock["resource_key"]: lock for lock in self.call("ListResourceLocks")["locks"]}

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture
def daemon():
    if not os.access(AGENTD_BIN, os.X_OK):
        pytest.fail(f"no agentd binary at {AGENTD_BIN}: run `swift build` first or set AGENTD_BIN")
    # A short directory: a Unix socket path must fit in 108 bytes.
    directory = tempfile.mkdtemp(prefix="agentd-mcp-", dir="/tmp")
    daemon = Daemon(directory)
    yield daemon
    daemon.stop()
    shutil.rmtree(directory, ignore_errors=True)


def server_parameters(daemon, agent=None, env=None):
    args = ["mcp", "--socket", daemon.socket_path]
    if agent is not None:
        args += ["--agent", agent]
    return StdioServerParameters(command=AGENTD_BIN, args=args, env=env or {})


@asynccontextmanager
async def mcp_session(daemon, agent="agent-a", env=None):
    """An initialized MCP session of a fresh `agentd mcp` process, over its stdio."""
    with open(os.path.join(daemon.directory, f"mcp-{agent}.log"), "a") as errlog:
        async with stdio_client(server_parameters(daemon, agent, env), errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


async def call(session, tool, **arguments):
    """Calls a tool that must succeed; returns its structured content."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {result.content[0].text}"
    assert result.structured_content is not None, f"{tool} gave no structured content"
    assert result.content and result.content[0].type == "text" and result.content[0].text
    return result.structured_content


async def call_error(session, tool, **arguments):
    """Calls a tool that must answer an error result; returns its structured content."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed: {result.content[0].text}"
    return result.structured_content
