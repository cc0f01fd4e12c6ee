"""The sans-I/O core on its own: no daemon, the steps of its flows answered here."""

from __future__ import annotations

import threading
import time
from typing import Any, ContextManager, Dict, List, Optional, Tuple

import pytest

from agentd_client import AgentdConnectionError, Lease, NodeNotRunning, TaskClosed
from agentd_client import _core
from agentd_client.client import _drive


def test_calls_carry_params_parking_and_reading() -> None:
    call = _core.acquire_next("t", None, 0, None)
    assert (call.method, call.params, call.parked) == (
        "AcquireNextNode", {"task_id": "t", "release_on_disconnect": True}, 0.0
    )
    call = _core.acquire_next("t", "me", 1.5, 2.2)
    assert call.params == {
        "task_id": "t", "release_on_disconnect": True, "lease_owner": "me", "wait_ms": 1500, "lease_ttl_secs": 3
    }
    assert call.parked == 1.5
    assert _core.read_events("t", 4, None, None, None).params == {
        "task_id": "t", "after_seq": 4, "wait_ms": _core.MAX_DURATION_SECS * 1000
    }
    assert _core.register_task("g", None, None).read({"task_id": 7}) == "7"
    assert _core.authenticate("x").read({"agent": "alice"}) == "alice"
    assert _core.authenticate("x").read({"agent": 3}) is None
    assert _core.any_method("M", {"wait_ms": 2000}, {"a": 1}).parked == 2.0


def test_event_pages_follow_seq_and_stop_on_a_short_page() -> None:
    pages = _core.EventPages("t", 0, None, False, 2, 30.0)
    assert pages.next_page == ("t", 0, None, 2, 0)
    assert [e["seq"] for e in pages.events({"events": [{"seq": 1}, {"seq": 2}], "next_seq": 2})] == [1, 2]
    assert pages.more and pages.seq == 2
    assert list(pages.events({"events": [{"seq": 3}], "next_seq": 5})) == [{"seq": 3}]
    assert not pages.more and pages.seq == 5


class _FakeConnection:
    closed = False
    agent: Optional[str] = None

    def stale(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class _FakeClient:
    """Answers the lease's calls from a script; records them."""

    def __init__(self, answers: Dict[str, Any]) -> None:
        self.answers = answers
        self.calls: List[Tuple[str, Any]] = []
        self.checked_in: List[_FakeConnection] = []

    @staticmethod
    def _new_mutex() -> ContextManager[Any]:
        return threading.Lock()

    def _checkin(self, connection: _FakeConnection) -> None:
        self.checked_in.append(connection)

    def _answer(self, method: str, payload: Any) -> Any:
        self.calls.append((method, payload))
        answer = self.answers.get(method, "event")
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def complete_node(self, task_id: str, node_id: str, lease_id: str, result: Any) -> Any:
        return self._answer("complete", result)

    def fail_node(self, task_id: str, node_id: str, lease_id: str, error: Any) -> Any:
        return self._answer("fail", error)


def _lease(client: _FakeClient) -> Tuple[Lease, _FakeConnection]:
    connection = _FakeConnection()
    result = {"task_id": "t", "node_id": "n", "lease_id": "l", "lease_expires_at": int(time.time()) + 60}
    return Lease(client, result, connection, 60), connection  # type: ignore[arg-type]


def test_worker_round_fails_the_node_with_the_exception() -> None:
    client = _FakeClient({})
    lease, connection = _lease(client)

    def boom(_: Any) -> None:
        raise ValueError("bad input")

    _drive(lease._run_flow(boom))
    assert client.calls == [("fail", {"type": "ValueError", "message": "bad input"})]
    assert lease.done and not connection.closed and client.checked_in == [connection]


def test_worker_round_fails_a_result_that_is_not_json_and_survives_a_refusal() -> None:
    client = _FakeClient({"complete": TypeError("not JSON")})
    lease, _ = _lease(client)
    _drive(lease._run_flow(lambda _: object()))
    assert [method for method, _ in client.calls] == ["complete", "fail"]
    assert client.calls[1][1]["type"] == "TypeError"

    client = _FakeClient({"complete": NodeNotRunning("expired")})
    lease, connection = _lease(client)
    _drive(lease._run_flow(lambda _: 1))  # logged, not raised: the daemon moved on
    assert client.checked_in == [connection] and lease.done


def test_an_interrupted_round_gives_the_node_back() -> None:
    client = _FakeClient({})
    lease, connection = _lease(client)

    def interrupted(_: Any) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _drive(lease._run_flow(interrupted))
    assert client.calls == [] and lease.done and connection.closed


def test_the_worker_loop_stops_when_the_task_is_closed_or_inactive() -> None:
    class Loop(_core.ClientCore[Any, Any]):
        def __init__(self, answers: List[Any]) -> None:
            self.answers = answers

        def acquire_next(self, *args: Any, **kwargs: Any) -> Any:
            answer = self.answers.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer

        def task_status(self, task_id: str) -> Any:
            return self.answers.pop(0)

    assert _drive(Loop([TaskClosed("closed")])._work_flow("t", print, None, 0, None)) == 0
    active, done = {"task": {"status": "ACTIVE"}}, {"task": {"status": "COMPLETED"}}
    assert _drive(Loop([None, active, None, done])._work_flow("t", print, None, 0, None)) == 0


def test_renewals_retry_connection_errors_until_the_deadline_and_stop_on_a_refusal() -> None:
    refused: List[BaseException] = []
    errors: List[BaseException] = [AgentdConnectionError("p", "down"), NodeNotRunning("gone")]

    def renew() -> None:
        raise errors.pop(0)

    class Renewer(_core.RenewerCore):
        def _start(self) -> None:
            self.slept: List[float] = []

        def _sleep(self, delay: float) -> bool:
            self.slept.append(delay)
            return False

        def _stopped(self) -> bool:
            return False

        def _paused(self) -> bool:
            return False

    renewer = Renewer(10.0, renew, lambda: time.time() + 60, refused.append)
    _drive(renewer._flow())
    assert renewer.slept == [10.0, _core.RenewerCore.RETRY]
    assert [type(error) for error in refused] == [NodeNotRunning]

    errors[:] = [AgentdConnectionError("p", "down")]
    refused.clear()
    _drive(Renewer(10.0, renew, lambda: time.time() - 1, refused.append)._flow())
    assert [type(error) for error in refused] == [AgentdConnectionError]
