"""`agentd mcp` through a real MCP client that nobody here wrote: the Python `mcp` package's
stdio client and ClientSession, against the real daemon."""

import os
import subprocess
import time
from contextlib import asynccontextmanager

import anyio
import mcp_types
import pytest
from mcp import ClientSession
from mcp.shared.message import SessionMessage

from conftest import AGENTD_BIN, DaemonError, apoll, call, call_error, mcp_session

pytestmark = pytest.mark.anyio

TOOLS = {"task_create", "task_status", "work_next", "work_log", "work_done", "work_fail",
         "lock", "unlock", "locks", "events"}


async def test_initialize_gives_instructions_and_lists_the_tools(daemon):
    async with mcp_session(daemon) as session:
        init = session.initialize_result
        assert init.server_info.name == "agentd"
        assert init.capabilities.tools is not None
        assert "lock" in init.instructions and "work_next" in init.instructions
        assert '"agent-a"' in init.instructions

        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 40, tool.name
            assert tool.input_schema["type"] == "object", tool.name
            assert isinstance(tool.input_schema["properties"], dict), tool.name
        schema = lambda name: tools[name].input_schema
        assert set(schema("task_create")["required"]) == {"goal", "nodes"}
        node = schema("task_create")["properties"]["nodes"]["items"]
        assert set(node["properties"]) == {"name", "after", "payload", "max_attempts"}
        assert node["required"] == ["name"]
        assert schema("work_next")["required"] == ["task_id"]
        assert schema("work_next")["properties"]["wait_s"]["maximum"] == 50
        assert set(schema("lock")["properties"]) >= {"keys", "ttl_s", "wait_s", "reason"}
        assert "required" not in schema("unlock")
        assert set(schema("events")["properties"]) >= {"task_id", "after_seq", "wait_s"}
        for name in ("task_status", "locks", "events"):
            assert tools[name].annotations.read_only_hint is True, name
            assert tools[name].annotations.idempotent_hint is True, name
        for name in ("task_create", "work_next", "work_done", "work_fail", "work_log", "lock", "unlock"):
            assert tools[name].annotations.read_only_hint is False, name
        assert tools["lock"].annotations.idempotent_hint is True
        assert tools["unlock"].annotations.idempotent_hint is True


async def test_a_task_is_created_and_worked_to_completed(daemon):
    async with mcp_session(daemon) as session:
        created = await call(session, "task_create", goal="ship the feature", context={"repo": "demo"}, nodes=[
            {"name": "design", "payload": {"do": "write the plan"}},
            {"name": "tests", "payload": {"do": "write tests"}, "max_attempts": 3},
            {"name": "code", "after": ["design", "tests"], "payload": {"do": "implement"}},
        ])
        task_id = created["task_id"]
        assert set(created["nodes"]) == {"design", "tests", "code"}
        ids = created["nodes"]
        # The daemon has the graph with the ids the server made.
        status = daemon.call("TaskStatus", {"task_id": task_id})
        by_id = {node["id"]: node for node in status["nodes"]}
        assert set(by_id) == set(ids.values())
        assert set(by_id[ids["code"]]["dependencies"]) == {ids["design"], ids["tests"]}
        assert by_id[ids["tests"]]["max_attempts"] == 3

        done = {}
        for _ in range(3):
            work = await call(session, "work_next", task_id=task_id, wait_s=5)
            assert "none" not in work, work
            name = work["name"]
            assert work["node_id"] == ids[name]
            assert work["lease_id"] and work["expires_at"]
            assert work["goal"] == "ship the feature" and work["task_context"] == {"repo": "demo"}
            if name == "code":
                assert {d["name"]: d["result"] for d in work["dependencies"]} == done
                assert {e["action_type"] for e in work["recent_events"]} >= {"COMPLETE_NODE", "COMMIT_EVENT"}
            else:
                assert work["dependencies"] == []
            nodes = {n["id"]: n for n in daemon.call("TaskStatus", {"task_id": task_id})["nodes"]}
            assert nodes[work["node_id"]]["lease_owner"] == "agent-a"
            logged = await call(session, "work_log", task_id=task_id, node_id=work["node_id"], message=f"working on {name}")
            assert logged["event_id"]
            result = {"summary": f"{name} done"}
            finished = await call(session, "work_done", task_id=task_id, node_id=work["node_id"], result=result)
            assert finished["event_id"]
            done[name] = result

        status = await call(session, "task_status", task_id=task_id)
        assert status["status"] == "COMPLETED"
        assert status["counts"] == {"COMPLETED": 3}
        assert [(n["name"], n["status"]) for n in status["nodes"]] == [
            ("design", "COMPLETED"), ("tests", "COMPLETED"), ("code", "COMPLETED")]

        nothing = await call(session, "work_next", task_id=task_id, wait_s=0)
        assert nothing["none"] is True
        assert nothing["task_status"]["status"] == "COMPLETED"
        assert "COMPLETED" in nothing["hint"]

        events = await call(session, "events", task_id=task_id)
        kinds = [e["action_type"] for e in events["events"]]
        assert kinds.count("COMPLETE_NODE") == 3 and kinds.count("COMMIT_EVENT") == 3
        assert [e["seq"] for e in events["events"]] == list(range(1, len(kinds) + 1))
        assert events["next_seq"] == len(kinds)
        later = await call(session, "events", task_id=task_id, after_seq=events["next_seq"])
        assert later["events"] == []


async def test_a_failed_node_and_a_node_of_another_session(daemon):
    async with mcp_session(daemon, "agent-a") as a, mcp_session(daemon, "agent-b") as b:
        task_id = (await call(a, "task_create", goal="g", nodes=[{"name": "only"}]))["task_id"]
        work = await call(a, "work_next", task_id=task_id, wait_s=0)
        # B cannot finish A's node: it holds no lease on it.
        refused = await call_error(b, "work_done", task_id=task_id, node_id=work["node_id"], result={})
        assert refused["reason"] == "NO_LEASE"
        assert "agent-a" in refused["error"] and "work_next" in refused["next"]
        failed = await call(a, "work_fail", task_id=task_id, node_id=work["node_id"], error={"why": "broken"})
        assert failed["event_id"]
        status = await call(b, "task_status", task_id=task_id)
        assert status["status"] == "FAILED"
        assert status["nodes"][0]["name"] == "only"
        # Finishing it twice is an error with a next step, not a crash.
        again = await call_error(a, "work_done", task_id=task_id, node_id=work["node_id"])
        assert again["reason"] == "NO_LEASE" and again["next"]


async def test_a_second_agent_waits_for_the_next_runnable_node(daemon):
    async with mcp_session(daemon, "agent-a") as a, mcp_session(daemon, "agent-b") as b:
        created = await call(a, "task_create", goal="g", nodes=[{"name": "first"}, {"name": "second", "after": ["first"]}])
        task_id = created["task_id"]
        first = await call(a, "work_next", task_id=task_id, wait_s=0)
        assert first["name"] == "first"
        async with anyio.create_task_group() as group:
            taken = {}

            async def wait_for_next():
                taken["b"] = await call(b, "work_next", task_id=task_id, wait_s=30)

            group.start_soon(wait_for_next)
            await call(a, "work_done", task_id=task_id, node_id=first["node_id"], result={"ok": True})
        assert taken["b"]["node_id"] == created["nodes"]["second"]
        assert taken["b"]["dependencies"][0]["result"] == {"ok": True}


async def test_task_create_refuses_bad_graphs_naming_the_node(daemon):
    async with mcp_session(daemon) as session:
        cases = [
            ([{"name": "a"}, {"name": "b", "after": ["nope"]}], ['"b"', '"nope"']),
            ([{"name": "a"}, {"name": "a"}], ['"a"', "duplicate"]),
            ([{"name": "a", "after": ["c"]}, {"name": "b", "after": ["a"]}, {"name": "c", "after": ["b"]}],
             ['cycle: "a" -> "b" -> "c" -> "a"']),
            ([{"name": "a", "after": ["a"]}], ['"a"', "itself"]),
            ([{"title": "x"}], ["name"]),
        ]
        for nodes, words in cases:
            error = await call_error(session, "task_create", goal="g", nodes=nodes)
            assert error["reason"] == "INVALID_DAG", error
            for word in words:
                assert word in error["error"], (word, error)
            assert error["next"]
        assert daemon.call("ListTasks")["tasks"] == []
        missing = await call_error(session, "task_status", task_id="00000000-0000-4000-8000-000000000000")
        assert missing["reason"] == "TASK_NOT_FOUND" and missing["next"]


async def test_locks_are_all_or_nothing_and_wait_s_is_granted_on_release(daemon):
    async with mcp_session(daemon, "agent-a") as a, mcp_session(daemon, "agent-b") as b:
        held = await call(a, "lock", keys=["file:b"], reason="refactor")
        assert [g["key"] for g in held["granted"]] == ["file:b"] and held["conflicts"] == []
        token_b = held["granted"][0]["fencing_token"]

        refused = await b.call_tool("lock", {"keys": ["file:c", "file:b", "file:a"]})
        assert not refused.is_error  # a conflict is an answer, not an error
        content = refused.structured_content
        assert content["granted"] == []
        assert [(c["key"], c["owner"], c["reason"]) for c in content["conflicts"]] == [("file:b", "agent-a", "refactor")]
        assert content["conflicts"][0]["since"] and content["conflicts"][0]["expires_at"]
        assert "agent-a" in content["hint"] and "wait_s" in content["hint"]
        assert "agent-a" in refused.content[0].text
        # Nothing of B's request is held: file:a, taken first, was given back.
        assert set(daemon.locks()) == {"file:b"}

        async with anyio.create_task_group() as group:
            result = {}

            async def lock_waiting():
                result["b"] = await call(b, "lock", keys=["file:c", "file:b", "file:a"], wait_s=30)

            group.start_soon(lock_waiting)
            # B takes file:a, then waits in line for file:b.
            await apoll("B waiting on file:b", lambda: daemon.locks().get("file:b", {}).get("waiters") == 1)
            released = await call(a, "unlock", keys=["file:b"])
            assert released["released"] == ["file:b"]
        granted = result["b"]["granted"]
        assert [g["key"] for g in granted] == ["file:a", "file:b", "file:c"]
        assert result["b"]["conflicts"] == []
        assert all(g["fencing_token"] > token_b for g in granted if g["key"] == "file:b")
        assert {k: l["owner"] for k, l in daemon.locks().items()} == {"file:a": "agent-b", "file:b": "agent-b", "file:c": "agent-b"}

        listed = await call(a, "locks", prefix="file:")
        assert [(l["key"], l["owner"], l["mine"]) for l in listed["locks"]] == [
            ("file:a", "agent-b", False), ("file:b", "agent-b", False), ("file:c", "agent-b", False)]
        mine = await call(b, "locks")
        assert all(l["mine"] for l in mine["locks"]) and all(l["fencing_token"] for l in mine["locks"])

        # Asking again for what it holds is granted, not a conflict with itself.
        again = await call(b, "lock", keys=["file:a"])
        assert again["granted"][0]["already_held"] is True

        released = await call(b, "unlock")
        assert released["released"] == ["file:a", "file:b", "file:c"]
        assert daemon.locks() == {}
        nothing = await call(b, "unlock", keys=["file:a"])
        assert nothing["released"] == [] and nothing["not_held"] == ["file:a"]


async def test_the_agent_name_comes_from_the_environment_or_the_pid(daemon):
    async with mcp_session(daemon, agent=None, env={"AGENTD_AGENT": "from-env"}) as session:
        await call(session, "lock", keys=["k1"])
    async with mcp_session(daemon, agent=None) as session:
        await call(session, "lock", keys=["k2"])
        owner = daemon.locks()["k2"]["owner"]
        assert owner.startswith("mcp-") and owner[4:].isdigit()


@asynccontextmanager
async def session_with_own_pipes(daemon, agent):
    """ClientSession over pipes this test holds, so it can close the server's stdin itself and
    watch the process end on its own (the stdio client would also signal it)."""
    process = await anyio.open_process(
        [AGENTD_BIN, "mcp", "--socket", daemon.socket_path, "--agent", agent],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    to_session, from_server = anyio.create_memory_object_stream(0)
    to_server, from_session = anyio.create_memory_object_stream(0)

    async def read_stdout():
        buffer = b""
        async with to_session:
            async for chunk in process.stdout:
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                        await to_session.send(SessionMessage(message))

    async def write_stdin():
        async with from_session:
            async for message in from_session:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                await process.stdin.send(data.encode())

    async with anyio.create_task_group() as group:
        group.start_soon(read_stdout)
        group.start_soon(write_stdin)
        try:
            async with ClientSession(from_server, to_server) as session:
                await session.initialize()
                yield session, process
        finally:
            if process.returncode is None:
                process.kill()
            group.cancel_scope.cancel()


async def test_closing_stdin_ends_the_server_and_frees_everything_at_once(daemon):
    task_id = daemon.call("RegisterTask", {"goal": "g", "initial_nodes": [{}]})["task_id"]
    async with session_with_own_pipes(daemon, "quitter") as (session, process):
        await call(session, "lock", keys=["file:x", "file:y"], ttl_s=300)
        work = await call(session, "work_next", task_id=task_id, wait_s=0, lease_ttl_s=300)
        assert set(daemon.locks()) == {"file:x", "file:y"}
        assert daemon.call("TaskStatus", {"task_id": task_id})["nodes"][0]["status"] == "RUNNING"

        await process.stdin.aclose()
        with anyio.fail_after(20):
            await process.wait()
        assert process.returncode == 0

    # Long before any TTL: the daemon freed them when the connection closed.
    await apoll("the locks to be released", lambda: daemon.locks() == {})
    node = daemon.call("TaskStatus", {"task_id": task_id})["nodes"][0]
    assert node["status"] == "PENDING" and node["lease_id"] is None
    expired = [e for e in daemon.call("ReadEvents", {"task_id": task_id})["events"] if e["action_type"] == "LEASE_EXPIRED"]
    assert [(e["payload"]["lease_id"], e["payload"]["reason"]) for e in expired] == [(work["lease_id"], "disconnect")]


async def test_an_open_session_keeps_its_lock_and_lease_past_their_ttl(daemon):
    task_id = daemon.call("RegisterTask", {"goal": "g", "initial_nodes": [{}]})["task_id"]
    async with mcp_session(daemon, "keeper") as keeper, mcp_session(daemon, "other") as other:
        granted = (await call(keeper, "lock", keys=["file:long"], ttl_s=1))["granted"][0]
        work = await call(keeper, "work_next", task_id=task_id, wait_s=0, lease_ttl_s=1)
        first_expiry = max(granted["expires_at"], work["expires_at"])

        # Nobody calls a tool of the keeper's session meanwhile: only its heartbeats keep them.
        await apoll("three TTLs to pass", lambda: time.time() > first_expiry + 2, timeout=30, interval=0.2)

        lock = daemon.locks()["file:long"]
        assert lock["owner"] == "keeper" and lock["fencing_token"] == granted["fencing_token"]
        assert lock["lease_expires_at"] > granted["expires_at"]
        node = daemon.call("TaskStatus", {"task_id": task_id})["nodes"][0]
        assert node["status"] == "RUNNING" and node["lease_id"] == work["lease_id"]
        assert (await call(other, "lock", keys=["file:long"]))["granted"] == []
        assert "none" in await call(other, "work_next", task_id=task_id, wait_s=0)

        done = await call(keeper, "work_done", task_id=task_id, node_id=work["node_id"], result={})
        assert done["event_id"]
        assert (await call(keeper, "unlock"))["released"] == ["file:long"]


async def test_tool_errors_carry_a_reason_and_a_next_step(daemon):
    async with mcp_session(daemon) as session:
        missing = await call_error(session, "work_next", wait_s=0)
        assert missing["reason"] == "INVALID_ARGUMENTS" and "task_id" in missing["error"]
        bad = await call_error(session, "lock", keys=[])
        assert bad["reason"] == "INVALID_ARGUMENTS"
        closed = daemon.call("RegisterTask", {"goal": "g", "initial_nodes": [{}]})["task_id"]
        daemon.call("CancelTask", {"task_id": closed})
        cancelled = await call_error(session, "work_next", task_id=closed, wait_s=0)
        assert cancelled["reason"] == "TASK_CLOSED" and "stop" in cancelled["next"]


async def test_without_a_daemon_tools_say_how_to_start_one(daemon):
    daemon.stop()
    async with mcp_session(daemon) as session:
        assert len((await session.list_tools()).tools) == len(TOOLS)
        error = await call_error(session, "locks")
        assert error["reason"] == "AGENTD_UNREACHABLE"
        assert daemon.socket_path in error["error"] and "agentd serve" in error["next"]
