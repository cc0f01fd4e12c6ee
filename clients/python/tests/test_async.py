"""The asyncio twin: calls, locks (contention, renewal, loss) and the worker loop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any, Awaitable, Callable, Dict, List, Tuple, TypeVar

import pytest

from agentd_client import (
    AgentdConnectionError,
    AsyncClient,
    AsyncLease,
    AsyncLock,
    LockLost,
    LockNotAcquired,
    NodeNotRunning,
    TaskNotFound,
)
from conftest import Daemon

T = TypeVar("T")


async def until(predicate: Callable[[], Awaitable[T]], timeout: float = 10.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def run(daemon: Daemon, body: Callable[[AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with AsyncClient(daemon.socket, owner="async-test") as client:
            await asyncio.wait_for(body(client), 30)

    asyncio.run(main())


async def lock_row(client: AsyncClient, key: str) -> Any:
    rows = [row for row in await client.locks(prefix=key) if row["resource_key"] == key]
    return rows[0] if rows else None


def test_async_calls(daemon: Daemon) -> None:
    async def body(c: AsyncClient) -> None:
        assert (await c.health())["status"] == "ok"
        assert "runtime" in await c.metrics()
        assert (await c.describe_interface())["protocol"] == "agentd-jsonl-v1"
        # the original's five calls through call()
        task_id = (await c.call("RegisterTask", goal="five", initial_nodes=[{}]))["task_id"]
        got = await c.call("AcquireNextNode", task_id=task_id, lease_owner="a")
        ids = {"task_id": task_id, "node_id": got["node_id"], "lease_id": got["lease_id"]}
        await c.call("CommitEvent", ids, payload={"m": 1})
        await c.call("CompleteNode", ids, result_payload={"ok": True})
        assert (await c.call("TaskStatus", task_id=task_id))["counts"] == {"COMPLETED": 1}

        task_id = await c.register_task("async", nodes=[{"payload_schema": {"p": 1}}], context={"c": 1})
        added = await c.add_nodes(task_id, [{}])
        assert len(added) == 1
        lease = await c.acquire_next(task_id, owner="w", lease_ttl=60)
        assert lease is not None and lease.payload_schema == {"p": 1} and isinstance(lease.expires_at, int)
        await lease.heartbeat()
        await lease.commit_event({"x": 1})
        await lease.complete({"done": 1})
        with pytest.raises(NodeNotRunning):
            await lease.heartbeat()
        second = await c.acquire_next(task_id)
        assert second is not None
        await c.heartbeat_node(task_id, second.node_id, second.lease_id)
        await c.commit_event(task_id, second.node_id, second.lease_id, {"low": True})
        await second.fail({"no": 1})
        assert await c.acquire_next(task_id, wait=0.1) is None
        status = await c.task_status(task_id)
        assert status["counts"] == {"COMPLETED": 1, "FAILED": 1} and status["task"]["status"] == "FAILED"
        await c.retry_node(task_id, second.node_id)
        third = await c.acquire_next(task_id)
        assert third is not None
        await c.complete_node(task_id, third.node_id, third.lease_id, "by id")
        page = await c.read_events(task_id, limit=2)
        assert [e["seq"] for e in page["events"]] == [1, 2]
        seqs = [e["seq"] async for e in c.events(task_id, limit=2)]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 5
        assert (await c.list_tasks(status="COMPLETED", limit=1000))["tasks"]
        await c.cancel_task(task_id)
        await c.delete_task(task_id)
        with pytest.raises(TaskNotFound):
            await c.task_status(task_id)

    run(daemon, body)


def test_async_lease_context_manager(daemon: Daemon) -> None:
    async def body(c: AsyncClient) -> None:
        task_id = await c.register_task("async with", nodes=[{}, {}])
        lease = await c.acquire_next(task_id, lease_ttl=2)
        assert lease is not None
        first_expiry = lease.expires_at
        async with lease:
            while time.time() < first_expiry + 1:
                await asyncio.sleep(0.05)
            node = (await c.task_status(task_id))["nodes"][0]
            assert node["status"] == "RUNNING" and node["lease_id"] == lease.lease_id
        lease2 = await c.acquire_next(task_id)
        assert lease2 is not None
        with pytest.raises(KeyError):
            async with lease2:
                raise KeyError("k")
        nodes = (await c.task_status(task_id))["nodes"]
        assert nodes[0]["status"] == "COMPLETED"
        assert nodes[1]["status"] == "FAILED" and nodes[1]["result_payload"]["type"] == "KeyError"

    run(daemon, body)


def test_async_events_follow(daemon: Daemon) -> None:
    async def body(c: AsyncClient) -> None:
        task_id = await c.register_task("follow", nodes=[{}])
        lease = await c.acquire_next(task_id)
        assert lease is not None

        async def reader() -> List[str]:
            seen = []
            async for event in c.events(task_id, follow=True, poll=5):
                seen.append(event["action_type"])
                if event["action_type"] == "COMPLETE_NODE":
                    return seen
            return seen  # pragma: no cover

        follow = asyncio.ensure_future(reader())
        await lease.commit_event({"a": 1})
        await lease.complete()
        assert await asyncio.wait_for(follow, 10) == ["COMMIT_EVENT", "COMPLETE_NODE"]

    run(daemon, body)


def test_async_two_tasks_contend_fifo(daemon: Daemon) -> None:
    async def body(c: AsyncClient) -> None:
        key = "async-fifo:k"
        holders = 0
        max_holders = 0
        order: List[Tuple[str, int]] = []

        async def contender(name: str) -> None:
            nonlocal holders, max_holders
            async with c.lock(key, ttl=30, wait=20, owner=name) as lk:
                holders += 1
                max_holders = max(max_holders, holders)
                order.append((name, lk.fencing_token))  # type: ignore[arg-type]
                await asyncio.sleep(0.05)
                holders -= 1

        first = c.lock(key, ttl=30, owner="main")
        assert await first.acquire(wait=0)
        with pytest.raises(LockNotAcquired):
            async with c.lock(key, wait=0):
                pass  # pragma: no cover
        a = asyncio.ensure_future(contender("A"))
        await until(lambda: _waiters(c, key, 1), what="A to queue")
        b = asyncio.ensure_future(contender("B"))
        await until(lambda: _waiters(c, key, 2), what="B to queue")
        await first.release()
        await asyncio.gather(a, b)
        assert [name for name, _ in order] == ["A", "B"] and max_holders == 1
        tokens = [first.fencing_token] + [t for _, t in order]
        assert tokens == sorted(tokens) and len(set(tokens)) == 3
        assert await lock_row(c, key) is None

    run(daemon, body)


async def _waiters(c: AsyncClient, key: str, n: int) -> bool:
    row = await lock_row(c, key)
    return row is not None and row["waiters"] == n


def test_async_renewal_and_loss(daemon: Daemon) -> None:
    async def body(c: AsyncClient) -> None:
        other = AsyncClient(c.path, owner="thief")
        try:
            async with c.lock("async-renew:k", ttl=2) as lk:
                first_expiry = lk.expires_at
                assert first_expiry is not None
                while time.time() < first_expiry + 1.5:
                    await asyncio.sleep(0.05)
                assert (await lock_row(c, "async-renew:k"))["lease_id"] == lk.lease_id
                assert not await other.lock("async-renew:k", wait=0).acquire()

            lost_calls: List[AsyncLock] = []

            async def on_lost(lock: AsyncLock) -> None:
                lost_calls.append(lock)

            with pytest.raises(LockLost):
                async with c.lock("async-lost:k", ttl=1) as lk:
                    assert lk._renewer is not None
                    lk._renewer.paused = True  # test hook: renewals stop
                    stolen = other.lock("async-lost:k", ttl=30, wait=10)
                    assert await stolen.acquire()
                    lk._renewer.paused = False
                    await until(lambda: _is_lost(lk), what="the refused renewal")
            assert (await lock_row(c, "async-lost:k"))["lease_id"] == stolen.lease_id
            await stolen.release()

            lk2 = c.lock("async-lost:k", ttl=1, on_lost=on_lost)
            assert await lk2.acquire()
            assert lk2._renewer is not None
            lk2._renewer.paused = True
            stolen = other.lock("async-lost:k", ttl=30, wait=10)
            assert await stolen.acquire()
            lk2._renewer.paused = False
            await until(lambda: _true(bool(lost_calls)), what="on_lost")
            await lk2.release()  # no raise: on_lost was told
            assert lost_calls == [lk2]
            await stolen.release()
        finally:
            await other.close()

    run(daemon, body)


async def _is_lost(lock: AsyncLock) -> bool:
    return lock.lost is not None


async def _true(value: bool) -> bool:
    return value


def test_async_worker_three_node_dag_two_workers(daemon: Daemon) -> None:
    async def body(c: AsyncClient) -> None:
        a, b, cc = (str(uuid.uuid4()) for _ in range(3))
        task_id = await c.register_task(
            "async dag",
            nodes=[
                {"id": a, "payload_schema": "a"},
                {"id": b, "payload_schema": "b"},
                {"id": cc, "payload_schema": "c", "dependencies": [a, b]},
            ],
        )
        ran: List[Tuple[str, Any]] = []

        async def fn(lease: AsyncLease) -> Dict[str, Any]:
            ran.append((lease.owner or "", lease.payload_schema))
            await lease.commit_event({"on": lease.payload_schema})
            await asyncio.sleep(0.01)
            return {"n": lease.payload_schema, "deps": len(lease.context["completed_dependencies"])}

        counts = await asyncio.gather(
            c.work(task_id, fn, owner="w1", wait=0.5), c.work(task_id, fn, owner="w2", wait=0.5)
        )
        assert sum(counts) == 3
        assert Counter(n for _, n in ran) == {"a": 1, "b": 1, "c": 1}
        status = await c.task_status(task_id)
        assert status["task"]["status"] == "COMPLETED"
        assert {n["id"]: n["result_payload"] for n in status["nodes"]}[cc] == {"n": "c", "deps": 2}

        # a plain function and a raising one
        task2 = await c.register_task("async plain", nodes=[{}, {}])
        calls = 0

        def plain(lease: AsyncLease) -> int:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise RuntimeError("second")
            return calls

        assert await c.work(task2, plain, wait=0.5) == 2
        nodes = (await c.task_status(task2))["nodes"]
        assert nodes[0]["result_payload"] == 1
        assert nodes[1]["result_payload"] == {"type": "RuntimeError", "message": "second"}

    run(daemon, body)


def test_async_cancelled_worker_gives_the_node_back(daemon: Daemon) -> None:
    async def body(c: AsyncClient) -> None:
        task_id = await c.register_task("async cancel", nodes=[{}])
        started = asyncio.Event()

        async def fn(lease: AsyncLease) -> None:
            started.set()
            await asyncio.sleep(60)

        worker = asyncio.ensure_future(c.work(task_id, fn, wait=0.5))
        await asyncio.wait_for(started.wait(), 10)
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker

        async def pending() -> bool:
            return bool((await c.task_status(task_id))["nodes"][0]["status"] == "PENDING")

        await until(pending, what="the node to come back")

    run(daemon, body)


def test_async_unreachable_names_the_socket(tmp_path: Any) -> None:
    path = str(tmp_path / "none.sock")

    async def main() -> None:
        with pytest.raises(AgentdConnectionError, match="none.sock"):
            await AsyncClient(path).health()

    asyncio.run(main())
