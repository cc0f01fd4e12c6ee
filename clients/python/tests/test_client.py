"""Every call of the sync client against the real daemon."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any, Dict, List

import pytest

from agentd_client import AgentdConnectionError, Client, NodeNotRunning, TaskNotFound
from conftest import Daemon, daemon_has_node_names, wait_until

MISSING = "00000000-0000-4000-8000-000000000000"


def node_by_id(client: Client, task_id: str, node_id: str) -> Dict[str, Any]:
    return next(node for node in client.task_status(task_id)["nodes"] if node["id"] == node_id)


def test_originals_five_call_flow_through_call(client: Client) -> None:
    registered = client.call(
        "RegisterTask",
        goal="five calls",
        context={"repo": "agentd"},
        initial_nodes=[{"id": "11111111-1111-4111-8111-111111111111", "payload_schema": {"part": "src"}}],
    )
    task_id = registered["task_id"]
    acquired = client.call("AcquireNextNode", {"task_id": task_id, "lease_owner": "worker-a"})
    assert acquired["node_id"] == "11111111-1111-4111-8111-111111111111"
    assert acquired["context"]["task"]["context"] == {"repo": "agentd"}
    ids = {"task_id": task_id, "node_id": acquired["node_id"], "lease_id": acquired["lease_id"]}
    event = client.call("CommitEvent", ids, payload={"message": "reading src/"})
    assert isinstance(event["event_id"], str)
    completed = client.call("CompleteNode", ids, result_payload={"summary": "done"})
    assert isinstance(completed["event_id"], str)
    status = client.call("TaskStatus", {"task_id": task_id})
    assert status["counts"] == {"COMPLETED": 1}
    assert status["nodes"][0]["result_payload"] == {"summary": "done"}
    # snake_case names work too, and the params may be omitted
    assert client.call("health")["status"] == "ok"


def test_health_metrics_describe(client: Client) -> None:
    assert client.health()["status"] == "ok"
    assert "runtime" in client.metrics()
    interface = client.describe_interface()
    assert interface["protocol"] == "agentd-jsonl-v1"
    assert any(method["method"] == "AcquireNextNode" for method in interface["methods"])


def test_register_add_status_list_cancel_delete(client: Client) -> None:
    a, b = "aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"
    task_id = client.register_task(
        "lifecycle",
        nodes=[{"id": a, "payload_schema": {"step": 1}, "max_attempts": 2}, {"id": b, "dependencies": [a]}],
        context={"k": "v"},
    )
    status = client.task_status(task_id)
    assert status["task"]["goal"] == "lifecycle" and status["task"]["context"] == {"k": "v"}
    assert status["task"]["status"] == "ACTIVE"
    assert [node["id"] for node in status["nodes"]] == [a, b]
    assert status["nodes"][0]["payload_schema"] == {"step": 1}
    assert status["nodes"][0]["max_attempts"] == 2
    new_ids = client.add_nodes(task_id, [{"dependencies": [b]}, {}])
    assert len(new_ids) == 2
    assert client.task_status(task_id)["counts"] == {"PENDING": 4}

    page = client.list_tasks(status="ACTIVE", limit=1000)
    assert task_id in [task["id"] for task in page["tasks"]]
    first = client.list_tasks(limit=1)
    assert len(first["tasks"]) == 1 and first["next_after"] == first["tasks"][0]["id"]
    rest = client.list_tasks(limit=1000, after=first["next_after"])
    assert first["tasks"][0]["id"] not in [task["id"] for task in rest["tasks"]]

    client.cancel_task(task_id)
    assert client.task_status(task_id)["task"]["status"] == "CANCELLED"
    assert task_id in [task["id"] for task in client.list_tasks(status="CANCELLED")["tasks"]]
    client.delete_task(task_id)
    with pytest.raises(TaskNotFound):
        client.task_status(task_id)


def test_register_task_without_nodes_or_context(client: Client) -> None:
    task_id = client.register_task("empty")
    status = client.task_status(task_id)
    assert status["nodes"] == [] and status["task"]["context"] == {}


def test_acquire_next_lease_fields_and_calls(client: Client) -> None:
    task_id = client.register_task("lease", nodes=[{"payload_schema": {"p": 1}}], context={"c": 2})
    lease = client.acquire_next(task_id, owner="w1")
    assert lease is not None
    assert lease.task_id == task_id and lease.owner == "w1"
    assert isinstance(lease.expires_at, int) and lease.expires_at >= int(time.time())
    assert lease.context["task"]["context"] == {"c": 2}
    assert lease.payload_schema == {"p": 1} and lease.node["status"] == "RUNNING"
    assert lease.attempts == 1 and lease.name is None
    # nothing else runnable: None at once, and None after a short wait
    assert client.acquire_next(task_id) is None
    assert client.acquire_next(task_id, wait=0.2) is None

    lease.heartbeat()
    lease.heartbeat(ttl=120)
    assert node_by_id(client, task_id, lease.node_id)["lease_expires_at"] >= int(time.time()) + 119
    event_id = lease.commit_event({"msg": "working"})
    custom_id = lease.commit_event({"n": 1}, action_type="TOOL_CALL")
    assert event_id != custom_id
    lease.complete({"ok": True})
    assert lease.done
    node = node_by_id(client, task_id, lease.node_id)
    assert node["status"] == "COMPLETED" and node["result_payload"] == {"ok": True}
    actions = [event["action_type"] for event in client.events(task_id)]
    assert actions == ["COMMIT_EVENT", "TOOL_CALL", "COMPLETE_NODE"]


def test_lease_fail_and_retry_node(client: Client) -> None:
    task_id = client.register_task("fail", nodes=[{}])
    lease = client.acquire_next(task_id)
    assert lease is not None
    lease.fail({"why": "broken"})
    status = client.task_status(task_id)
    assert status["nodes"][0]["status"] == "FAILED" and status["nodes"][0]["result_payload"] == {"why": "broken"}
    assert status["task"]["status"] == "FAILED"
    client.retry_node(task_id, lease.node_id)
    assert client.task_status(task_id)["nodes"][0]["status"] == "PENDING"


def test_low_level_node_calls(client: Client) -> None:
    task_id = client.register_task("low level", nodes=[{}, {}])
    first = client.call("AcquireNextNode", task_id=task_id)
    client.heartbeat_node(task_id, first["node_id"], first["lease_id"], lease_ttl=60)
    client.commit_event(task_id, first["node_id"], first["lease_id"], {"x": 1})
    client.complete_node(task_id, first["node_id"], first["lease_id"], "done")
    second = client.call("AcquireNextNode", task_id=task_id)
    client.fail_node(task_id, second["node_id"], second["lease_id"], "nope")
    counts = client.task_status(task_id)["counts"]
    assert counts == {"COMPLETED": 1, "FAILED": 1}


def test_node_names_pass_through(client: Client) -> None:
    task_id = client.register_task("names", nodes=[{"name": "fetch"}])
    lease = client.acquire_next(task_id)
    assert lease is not None
    if daemon_has_node_names(client):
        assert lease.name == "fetch"
    else:
        assert lease.name is None  # this daemon does not keep names yet
    lease.complete()


def test_lease_context_manager_completes_and_heartbeats(client: Client) -> None:
    task_id = client.register_task("with", nodes=[{}])
    lease = client.acquire_next(task_id, lease_ttl=2)
    assert lease is not None
    first_expiry = lease.expires_at
    with lease:
        # Held past its one-second TTL by the background heartbeat.
        wait_until(lambda: time.time() >= first_expiry + 1, what="the first expiry to pass")
        node = node_by_id(client, task_id, lease.node_id)
        assert node["status"] == "RUNNING" and node["lease_id"] == lease.lease_id
    assert lease.lost is None
    node = node_by_id(client, task_id, lease.node_id)
    assert node["status"] == "COMPLETED" and node["result_payload"] is None


def test_lease_context_manager_fails_on_exception(client: Client) -> None:
    task_id = client.register_task("with error", nodes=[{}, {}])
    with pytest.raises(ZeroDivisionError):
        with client.acquire_next(task_id) as lease:  # type: ignore[union-attr]
            1 / 0
    node = node_by_id(client, task_id, lease.node_id)
    assert node["status"] == "FAILED"
    assert node["result_payload"] == {"type": "ZeroDivisionError", "message": "division by zero"}
    # completed inside the block: left alone on the way out
    with pytest.raises(RuntimeError):
        with client.acquire_next(task_id) as lease2:  # type: ignore[union-attr]
            lease2.complete(7)
            raise RuntimeError("after completing")
    assert node_by_id(client, task_id, lease2.node_id)["status"] == "COMPLETED"


def test_abandon_and_dropped_lease_give_the_node_back(client: Client) -> None:
    task_id = client.register_task("give back", nodes=[{}])
    lease = client.acquire_next(task_id)
    assert lease is not None
    lease.abandon()
    node = wait_until(
        lambda: (n := node_by_id(client, task_id, lease.node_id))["status"] == "PENDING" and n,
        what="the abandoned node to return to PENDING",
    )
    assert node["attempts"] == 1
    # A Lease object dropped while RUNNING closes its connection: the node comes back at once.
    client.acquire_next(task_id)
    gc.collect()
    wait_until(
        lambda: node_by_id(client, task_id, lease.node_id)["status"] == "PENDING",
        what="the dropped lease's node to return to PENDING",
    )
    expired = [e for e in client.events(task_id) if e["action_type"] == "LEASE_EXPIRED"]
    assert [e["payload"]["reason"] for e in expired] == ["disconnect", "disconnect"]


def test_events_pages_and_filters(client: Client) -> None:
    task_id = client.register_task("events", nodes=[{}, {}])
    first = client.acquire_next(task_id)
    assert first is not None
    for i in range(5):
        first.commit_event({"i": i})
    first.complete()
    second = client.acquire_next(task_id)
    assert second is not None
    second.commit_event({"other": True})
    events = list(client.events(task_id, limit=2))  # pages of two
    assert [e["seq"] for e in events] == list(range(1, 8))
    assert [e["seq"] for e in client.events(task_id, after=5)] == [6, 7]
    assert len(list(client.events(task_id, node_id=second.node_id))) == 1
    page = client.read_events(task_id, after=0, limit=3)
    assert [e["seq"] for e in page["events"]] == [1, 2, 3] and page["next_seq"] == 3
    empty = client.read_events(task_id, after=7, wait=0.1)
    assert empty["events"] == [] and empty["next_seq"] == 7
    second.complete()


def test_events_follow(client: Client) -> None:
    task_id = client.register_task("follow", nodes=[{}])
    lease = client.acquire_next(task_id)
    assert lease is not None
    seen: List[int] = []

    def reader() -> None:
        for event in client.events(task_id, follow=True, poll=5):
            seen.append(event["seq"])
            if event["action_type"] == "COMPLETE_NODE":
                return

    thread = threading.Thread(target=reader)
    thread.start()
    lease.commit_event({"a": 1})
    lease.commit_event({"a": 2})
    lease.complete()
    thread.join(15)
    assert not thread.is_alive()
    assert seen == [1, 2, 3]


def test_locks_listing_by_prefix(client: Client) -> None:
    with client.lock("list:file:a", ttl=30), client.lock("list:file:b", ttl=30), client.lock("list:db:x", ttl=30):
        keys = [lock["resource_key"] for lock in client.locks(prefix="list:file:")]
        assert keys == ["list:file:a", "list:file:b"]
        everything = client.locks()
        assert {"list:file:a", "list:file:b", "list:db:x"} <= {lock["resource_key"] for lock in everything}
    assert client.locks(prefix="list:") == []


def test_one_client_shared_by_threads(client: Client) -> None:
    task_id = client.register_task("threads", nodes=[{} for _ in range(40)])
    errors: List[BaseException] = []
    done: List[str] = []

    def worker(n: int) -> None:
        try:
            while True:
                lease = client.acquire_next(task_id, owner=f"t{n}")
                if lease is None:
                    return
                lease.commit_event({"by": n})
                assert client.health()["status"] == "ok"
                lease.complete(n)
                done.append(lease.node_id)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(done) == 40 and len(set(done)) == 40
    assert client.task_status(task_id)["task"]["status"] == "COMPLETED"


def test_a_parked_call_does_not_hold_up_other_threads(client: Client) -> None:
    holder = client.lock("parked:k", ttl=30)
    assert holder.acquire(wait=0)
    waiter = client.lock("parked:k", ttl=30, wait=20)
    got: List[bool] = []
    thread = threading.Thread(target=lambda: got.append(waiter.acquire()))
    thread.start()
    wait_until(lambda: client.locks(prefix="parked:")[0]["waiters"] == 1, what="the parked acquire")
    # While the other thread is parked, this thread's calls are answered (another connection).
    for _ in range(5):
        assert client.health()["status"] == "ok"
    holder.extend()
    assert thread.is_alive() and not got
    holder.release()  # hands the lock to the parked waiter
    thread.join(15)
    assert got == [True] and waiter.fencing_token > holder.fencing_token  # type: ignore[operator]
    waiter.release()


def test_reconnects_after_a_daemon_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="agentd-py-") as directory:
        own = Daemon(directory)
        own.start()
        try:
            c = Client(own.socket)
            task_id = c.register_task("survives", nodes=[{}])
            own.restart()
            assert c.task_status(task_id)["counts"] == {"PENDING": 1}
            own.stop()
            with pytest.raises(AgentdConnectionError) as caught:
                c.health()
            assert own.socket in str(caught.value)
            own.start()
            assert c.health()["status"] == "ok"
            c.close()
            with pytest.raises(AgentdConnectionError):
                c.health()
        finally:
            own.stop()


def test_stale_lease_is_refused_after_expiry(daemon: Daemon, client: Client) -> None:
    task_id = client.register_task("stale", nodes=[{}])
    lease = client.acquire_next(task_id, lease_ttl=1)
    assert lease is not None
    wait_until(
        lambda: node_by_id(client, task_id, lease.node_id)["status"] == "PENDING",
        what="the lease to expire",
    )
    with pytest.raises(NodeNotRunning):
        lease.complete()
    assert lease.done
