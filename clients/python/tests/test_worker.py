"""The worker loop."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any, Dict, List, Tuple

import pytest

from agentd_client import Client, Lease
from conftest import wait_until



def three_node_dag(client: Client, goal: str) -> Tuple[str, str, str, str]:
    A, B, C = (str(uuid.uuid4()) for _ in range(3))
    # c joins a and b
    task_id = client.register_task(
        goal,
        nodes=[
            {"id": A, "payload_schema": {"n": "a"}},
            {"id": B, "payload_schema": {"n": "b"}},
            {"id": C, "payload_schema": {"n": "c"}, "dependencies": [A, B]},
        ],
    )
    return task_id, A, B, C


def test_two_workers_run_a_three_node_dag_each_node_once(client: Client) -> None:
    task_id, A, B, C = three_node_dag(client, "dag")
    ran: List[Any] = []
    mutex = threading.Lock()

    def fn(lease: Lease) -> Dict[str, Any]:
        deps = {d["node_id"]: d["result_payload"] for d in lease.context["completed_dependencies"]}
        with mutex:
            ran.append((lease.owner, lease.payload_schema["n"]))
        lease.commit_event({"working_on": lease.payload_schema["n"]})
        return {"n": lease.payload_schema["n"], "saw": sorted(r["n"] for r in deps.values())}

    counts: Dict[str, int] = {}
    errors: List[BaseException] = []

    def worker(owner: str) -> None:
        try:
            counts[owner] = client.work(task_id, fn, owner=owner, wait=0.5)
        except BaseException as error:  # pragma: no cover
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(owner,)) for owner in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and not any(thread.is_alive() for thread in threads)
    assert Counter(n for _, n in ran) == {"a": 1, "b": 1, "c": 1}
    assert sum(counts.values()) == 3
    status = client.task_status(task_id)
    assert status["task"]["status"] == "COMPLETED"
    results = {node["id"]: node["result_payload"] for node in status["nodes"]}
    assert results[C] == {"n": "c", "saw": ["a", "b"]}
    actions = Counter(e["action_type"] for e in client.events(task_id))
    assert actions == {"COMMIT_EVENT": 3, "COMPLETE_NODE": 3}


def test_a_raising_fn_fails_its_node_and_the_loop_ends_with_the_task(client: Client) -> None:
    A, B = str(uuid.uuid4()), str(uuid.uuid4())
    task_id = client.register_task("failing", nodes=[{"id": A}, {"id": B, "dependencies": [A]}])

    def fn(lease: Lease) -> None:
        raise ValueError(f"cannot do {lease.node_id}")

    assert client.work(task_id, fn, owner="w", wait=0.5) == 1
    status = client.task_status(task_id)
    assert status["task"]["status"] == "FAILED"
    assert status["nodes"][0]["result_payload"] == {"type": "ValueError", "message": f"cannot do {A}"}
    assert status["nodes"][1]["status"] == "PENDING"  # blocked for good


def test_fn_that_completes_or_fails_itself(client: Client) -> None:
    A, B = str(uuid.uuid4()), str(uuid.uuid4())
    task_id = client.register_task("self", nodes=[{"id": A}, {"id": B}])

    def fn(lease: Lease) -> str:
        if lease.node_id == A:
            lease.complete("by hand")
        else:
            lease.fail("by hand")
        return "ignored"

    assert client.work(task_id, fn, wait=0.5) == 2
    nodes = client.task_status(task_id)["nodes"]
    assert [(n["status"], n["result_payload"]) for n in nodes] == [("COMPLETED", "by hand"), ("FAILED", "by hand")]


def test_a_result_that_is_not_json_fails_the_node(client: Client) -> None:
    task_id = client.register_task("not json", nodes=[{}])
    assert client.work(task_id, lambda lease: object(), wait=0.5) == 1
    node = client.task_status(task_id)["nodes"][0]
    assert node["status"] == "FAILED" and node["result_payload"]["type"] == "TypeError"


def test_cancelling_the_task_stops_the_loop(client: Client) -> None:
    A, B = str(uuid.uuid4()), str(uuid.uuid4())
    task_id = client.register_task("cancel", nodes=[{"id": A}, {"id": B, "dependencies": [A]}])
    started = threading.Event()
    release = threading.Event()

    def fn(lease: Lease) -> None:
        started.set()
        release.wait(10)

    result: List[int] = []
    thread = threading.Thread(target=lambda: result.append(client.work(task_id, fn, wait=0.5)))
    thread.start()
    assert started.wait(10)
    client.cancel_task(task_id)
    release.set()
    thread.join(15)
    assert result == [1]  # the completion of the cancelled node was refused; the loop ended


def test_interrupt_gives_the_node_back_and_propagates(client: Client) -> None:
    task_id = client.register_task("interrupt", nodes=[{}])

    def fn(lease: Lease) -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        client.work(task_id, fn, wait=0.5)
    wait_until(
        lambda: client.task_status(task_id)["nodes"][0]["status"] == "PENDING", what="the node to come back"
    )
    assert client.work(task_id, lambda lease: "second try", wait=0.5) == 1
    node = client.task_status(task_id)["nodes"][0]
    assert node["status"] == "COMPLETED" and node["attempts"] == 2
