"""Socket discovery, the constructor's shapes, and errors per reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import agentd_client
from agentd_client import (
    AgentdConnectionError,
    AgentdError,
    AsyncClient,
    Client,
    InvalidDag,
    InvalidParams,
    InvalidRequest,
    LeaseMismatch,
    LockNotHeld,
    NodeNotFound,
    NodeNotRunning,
    ParseError,
    RequestTooLarge,
    TaskClosed,
    TaskNotFound,
    UnknownMethod,
    default_socket_path,
)
from agentd_client.errors import REASONS, error_from_answer

MISSING = "00000000-0000-4000-8000-000000000000"


# -- discovery ---------------------------------------------------------------------


def test_default_is_under_home(tmp_path: Path) -> None:
    assert default_socket_path({"HOME": str(tmp_path)}) == f"{tmp_path}/.agentd/agentd.sock"


def test_agentd_home(tmp_path: Path) -> None:
    env = {"HOME": "/nowhere", "AGENTD_HOME": str(tmp_path / "h")}
    assert default_socket_path(env) == f"{tmp_path}/h/agentd.sock"


def test_socket_path_wins_and_tilde_expands(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "AGENTD_HOME": "/elsewhere", "AGENTD_SOCKET_PATH": "~/s.sock"}
    assert default_socket_path(env) == f"{tmp_path}/s.sock"


def test_env_file_in_home(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# comment\n\nexport AGENTD_SOCKET_PATH = \"/from/file.sock\"\nOTHER='x'\nnot a setting\n"
    )
    env = {"HOME": "/nowhere", "AGENTD_HOME": str(tmp_path)}
    assert default_socket_path(env) == "/from/file.sock"


def test_process_environment_wins_over_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AGENTD_SOCKET_PATH=/from/file.sock\n")
    env = {"HOME": "/nowhere", "AGENTD_HOME": str(tmp_path), "AGENTD_SOCKET_PATH": "/from/env.sock"}
    assert default_socket_path(env) == "/from/env.sock"


def test_env_file_override_path(tmp_path: Path) -> None:
    (tmp_path / "custom.env").write_text("AGENTD_SOCKET_PATH='/custom.sock'\n")
    (tmp_path / ".env").write_text("AGENTD_SOCKET_PATH=/ignored.sock\n")
    env = {"HOME": "/nowhere", "AGENTD_HOME": str(tmp_path), "AGENTD_ENV_FILE": str(tmp_path / "custom.env")}
    assert default_socket_path(env) == "/custom.sock"


def test_env_file_may_set_home(tmp_path: Path) -> None:
    (tmp_path / "e").write_text("AGENTD_HOME=/var/agentd\n")
    env = {"HOME": "/nowhere", "AGENTD_ENV_FILE": str(tmp_path / "e")}
    assert default_socket_path(env) == "/var/agentd/agentd.sock"


def test_client_uses_discovery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTD_SOCKET_PATH", str(tmp_path / "d.sock"))
    assert Client().path == str(tmp_path / "d.sock")
    assert AsyncClient().path == str(tmp_path / "d.sock")
    assert Client("/explicit.sock").path == "/explicit.sock"


def test_tls_arguments_need_a_tls_address() -> None:
    with pytest.raises(ValueError):
        Client("/a.sock", token="secret")
    with pytest.raises(ValueError):
        AsyncClient("/a.sock", token_file="/token")
    # A tls:// address is resolved at construction (no connection yet).
    c = Client("tls://example.org:7777", token="secret")
    assert c.path == "tls://example.org:7777" and c.tls and c.owner is None and c.agent is None


def test_unreachable_daemon_names_the_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.sock")
    with pytest.raises(AgentdConnectionError) as caught:
        Client(path).health()
    assert isinstance(caught.value, ConnectionError)
    assert caught.value.path == path
    assert path in str(caught.value)


def test_stale_socket_file_names_the_socket(tmp_path: Path) -> None:
    import socket

    path = str(tmp_path / "stale.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.close()  # the file stays, nobody listens
    with pytest.raises(AgentdConnectionError, match="stale.sock"):
        Client(path).health()


# -- errors ------------------------------------------------------------------------


def test_every_reason_has_its_class() -> None:
    expected = {
        "TASK_NOT_FOUND": "TaskNotFound",
        "NODE_NOT_FOUND": "NodeNotFound",
        "NODE_NOT_RUNNING": "NodeNotRunning",
        "LEASE_MISMATCH": "LeaseMismatch",
        "LOCK_NOT_HELD": "LockNotHeld",
        "INVALID_DAG": "InvalidDag",
        "TASK_CLOSED": "TaskClosed",
        "INVALID_PARAMS": "InvalidParams",
        "PARSE_ERROR": "ParseError",
        "INVALID_REQUEST": "InvalidRequest",
        "UNKNOWN_METHOD": "UnknownMethod",
        "REQUEST_TOO_LARGE": "RequestTooLarge",
        "UNAUTHENTICATED": "Unauthenticated",
    }
    assert set(REASONS) == set(expected)
    for reason, name in expected.items():
        cls = getattr(agentd_client, name)
        error = error_from_answer({"code": -32000, "message": "m", "data": {"reason": reason}}, "M")
        assert type(error) is cls and isinstance(error, AgentdError)
        assert (error.code, error.reason, error.message, error.method) == (-32000, reason, "m", "M")


def test_answers_without_reason_map_by_code_and_message() -> None:
    cases = [
        ({"code": -32700, "message": "parse error: x"}, ParseError),
        ({"code": -32601, "message": "unknown method: X"}, UnknownMethod),
        ({"code": -32602, "message": "invalid params: task_id"}, InvalidParams),
        ({"code": -32001, "message": "request exceeds 1048576 bytes"}, RequestTooLarge),
        ({"code": -32000, "message": f"task not found: {MISSING}"}, TaskNotFound),
        ({"code": -32000, "message": f"node not found: {MISSING} for task {MISSING}"}, NodeNotFound),
        ({"code": -32000, "message": f"node {MISSING} for task {MISSING} is not RUNNING"}, NodeNotRunning),
        ({"code": -32000, "message": "invalid state: node n cannot transition from COMPLETED to FAILED"}, NodeNotRunning),
        ({"code": -32000, "message": "invalid state: node n cannot transition from RUNNING to COMPLETED"}, LeaseMismatch),
        ({"code": -32000, "message": "invalid state: node n for task t requires the current RUNNING lease"}, LeaseMismatch),
        ({"code": -32000, "message": "invalid state: resource lock k requires the current lease"}, LockNotHeld),
        ({"code": -32000, "message": "invalid state: cycle detected at node n"}, InvalidDag),
        ({"code": -32000, "message": "something else"}, AgentdError),
    ]
    for error, cls in cases:
        mapped = error_from_answer(error)
        assert type(mapped) is cls, error
        assert mapped.reason is None


def test_reasons_from_the_daemon(client: Client) -> None:
    with pytest.raises(TaskNotFound) as caught:
        client.task_status(MISSING)
    assert caught.value.code == -32000 and caught.value.reason == "TASK_NOT_FOUND"
    assert MISSING in caught.value.message

    task_id = client.register_task("errors", nodes=[{}])
    with pytest.raises(NodeNotFound):
        client.heartbeat_node(task_id, MISSING, MISSING)
    lease = client.acquire_next(task_id)
    assert lease is not None
    with pytest.raises(LeaseMismatch):
        client.complete_node(task_id, lease.node_id, MISSING, {})
    with pytest.raises(LeaseMismatch):
        client.commit_event(task_id, lease.node_id, MISSING, {})
    lease.complete({"ok": True})
    with pytest.raises(NodeNotRunning):
        lease.heartbeat()
    with pytest.raises(NodeNotRunning):
        client.complete_node(task_id, lease.node_id, lease.lease_id, {})
    with pytest.raises(InvalidDag):
        client.register_task("cycle", nodes=[{"id": MISSING, "dependencies": [MISSING]}])
    with pytest.raises(LockNotHeld):
        client.call("ReleaseResourceLock", resource_key="errors:k", lease_id=MISSING)
    with pytest.raises(InvalidParams) as params_error:
        client.call("TaskStatus", task_id="not-a-uuid")
    assert params_error.value.code == -32602
    with pytest.raises(UnknownMethod) as method_error:
        client.call("NoSuchMethod")
    assert method_error.value.code == -32601
    open_task = client.register_task("closed", nodes=[{}])
    with pytest.raises(TaskClosed):
        client.delete_task(open_task)  # still ACTIVE
    client.cancel_task(open_task)
    with pytest.raises(TaskClosed):
        client.add_nodes(open_task, [{}])
    # The client keeps working after every refusal.
    assert client.health()["status"] == "ok"


def test_invalid_request_answered_without_id(client: Client) -> None:
    # A method that is not a string: answered -32700 without an id, reason INVALID_REQUEST.
    with pytest.raises(InvalidRequest) as caught:
        client.call(123)  # type: ignore[arg-type]
    assert caught.value.code == -32700
    assert client.health()["status"] == "ok"


def test_request_too_large_is_refused_before_sending(client: Client) -> None:
    with pytest.raises(RequestTooLarge):
        client.register_task("big", context={"blob": "x" * 1_048_576})
    assert client.health()["status"] == "ok"


def test_nan_is_not_json(client: Client) -> None:
    with pytest.raises(ValueError):
        client.register_task("nan", context={"x": float("nan")})
    assert client.health()["status"] == "ok"
