"""Locks: contention with wait, renewal, loss, and dying with the process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, List, Tuple

import pytest

from agentd_client import Client, Lock, LockLost, LockNotAcquired
from conftest import Daemon, wait_until


def lock_row(client: Client, key: str) -> Any:
    rows = [row for row in client.locks(prefix=key) if row["resource_key"] == key]
    return rows[0] if rows else None


def test_lock_fields_and_release(client: Client) -> None:
    with client.lock("fields:k", ttl=30, wait=0, owner="me", provider="test", metadata={"why": "x"}) as lk:
        assert lk.held and lk.lease_id and isinstance(lk.fencing_token, int)
        assert isinstance(lk.expires_at, int) and lk.expires_at >= int(time.time()) + 29
        row = lock_row(client, "fields:k")
        assert row["owner"] == "me" and row["provider"] == "test" and row["metadata"] == {"why": "x"}
        assert row["lease_id"] == lk.lease_id and row["fencing_token"] == lk.fencing_token
        assert lk.info is not None and lk.info["resource_key"] == "fields:k"
    assert not lk.held
    assert lock_row(client, "fields:k") is None


def test_contended_lock_without_wait(client: Client) -> None:
    other = Client(client.path, owner="other")
    try:
        with client.lock("busy:k", ttl=30):
            with pytest.raises(LockNotAcquired):
                with other.lock("busy:k", wait=0):
                    pass  # pragma: no cover
            assert other.lock("busy:k", wait=0.2).acquire() is False
            # the same owner asking again is refused too
            assert client.lock("busy:k", wait=0).acquire() is False
    finally:
        other.close()


def test_lock_tied_to_a_task(client: Client) -> None:
    task_id = client.register_task("lock owner task", nodes=[{}])
    with client.lock("task:k", task_id=task_id, node_id=None) as lk:
        assert lk.info is not None and lk.info["task_id"] == task_id


def test_two_threads_contend_fifo_one_holder_at_a_time(client: Client) -> None:
    key = "fifo:k"
    holders = 0
    max_holders = 0
    order: List[Tuple[str, int]] = []
    mutex = threading.Lock()

    def contender(name: str) -> None:
        nonlocal holders, max_holders
        with client.lock(key, ttl=30, wait=20, owner=name) as lk:
            with mutex:
                holders += 1
                max_holders = max(max_holders, holders)
                order.append((name, lk.fencing_token))  # type: ignore[arg-type]
            time.sleep(0.05)  # hold it a moment, so an overlap would show
            with mutex:
                holders -= 1

    first = client.lock(key, ttl=30, owner="main")
    assert first.acquire(wait=0)
    a = threading.Thread(target=contender, args=("A",))
    a.start()
    wait_until(lambda: lock_row(client, key)["waiters"] == 1, what="A to queue")
    b = threading.Thread(target=contender, args=("B",))
    b.start()
    wait_until(lambda: lock_row(client, key)["waiters"] == 2, what="B to queue behind A")
    first.release()
    a.join(20)
    b.join(20)
    assert [name for name, _ in order] == ["A", "B"]  # FIFO
    assert max_holders == 1
    tokens = [first.fencing_token] + [token for _, token in order]
    assert tokens == sorted(tokens) and len(set(tokens)) == 3  # strictly rising


def test_renewal_keeps_a_lock_past_its_ttl(client: Client) -> None:
    other = Client(client.path, owner="other")
    try:
        with client.lock("renew:k", ttl=2) as lk:
            first_expiry = lk.expires_at
            assert first_expiry is not None
            wait_until(lambda: time.time() >= first_expiry + 1.5, what="two TTLs to pass")
            assert lock_row(client, "renew:k")["lease_id"] == lk.lease_id
            assert other.lock("renew:k", wait=0).acquire() is False
            assert lk.held and lk.lost is None
        assert lock_row(client, "renew:k") is None
    finally:
        other.close()


def test_extend(client: Client) -> None:
    with client.lock("extend:k", ttl=5, renew=False) as lk:
        lk.extend(ttl=600)
        assert lock_row(client, "extend:k")["lease_expires_at"] >= int(time.time()) + 599


def test_lock_lost_when_renewal_is_refused(client: Client) -> None:
    other = Client(client.path, owner="thief")
    try:
        with pytest.raises(LockLost) as caught:
            with client.lock("lost:k", ttl=1) as lk:
                assert lk._renewer is not None
                lk._renewer.paused.set()  # test hook: renewals stop, the lock expires
                stolen = other.lock("lost:k", ttl=30, wait=10)
                assert stolen.acquire()  # granted when it expires
                assert stolen.fencing_token > lk.fencing_token  # type: ignore[operator]
                lk._renewer.paused.clear()  # the next renewal is refused
                wait_until(lambda: lk.lost is not None, what="the refused renewal")
                assert not lk.held
        assert caught.value.data["resource_key"] == "lost:k"
        # The new owner's lock was not touched by the loser's exit.
        assert lock_row(client, "lost:k")["lease_id"] == stolen.lease_id
        stolen.release()
    finally:
        other.close()


def test_lock_lost_without_renewal_reported_to_on_lost(client: Client) -> None:
    other = Client(client.path, owner="thief")
    reported: List[Lock] = []
    try:
        with client.lock("lost-cb:k", ttl=1, renew=False, on_lost=reported.append) as lk:
            stolen = other.lock("lost-cb:k", ttl=30, wait=10)
            assert stolen.acquire()
        # on_lost was called instead of raising
        assert reported == [lk] and isinstance(lk.lost, LockLost)
        stolen.release()
        # Without renewal and without on_lost, release raises.
        plain = client.lock("lost-cb:k", ttl=1, renew=False)
        assert plain.acquire()
        thief = other.lock("lost-cb:k", ttl=30, wait=10)
        assert thief.acquire()
        with pytest.raises(LockLost):
            plain.release()
        assert not plain.held
        thief.release()
    finally:
        other.close()


def test_on_lost_called_from_renewal(client: Client) -> None:
    other = Client(client.path, owner="thief")
    called = threading.Event()
    try:
        lk = client.lock("lost-renew:k", ttl=1, on_lost=lambda lock: called.set())
        assert lk.acquire()
        assert lk._renewer is not None
        lk._renewer.paused.set()
        stolen = other.lock("lost-renew:k", ttl=30, wait=10)
        assert stolen.acquire()
        lk._renewer.paused.clear()
        assert called.wait(10)
        lk.release()  # does not raise: on_lost was told
        stolen.release()
    finally:
        other.close()


def test_exception_in_block_still_releases(client: Client) -> None:
    with pytest.raises(KeyError):
        with client.lock("raise:k", ttl=30):
            raise KeyError("boom")
    assert lock_row(client, "raise:k") is None


def test_lock_object_reusable(client: Client) -> None:
    lk = client.lock("reuse:k", ttl=30)
    tokens = []
    for _ in range(2):
        with lk:
            tokens.append(lk.fencing_token)
    assert tokens[1] > tokens[0]


def test_killed_process_frees_its_lock_at_once(daemon: Daemon, client: Client) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from agentd_client import Client
        c = Client(sys.argv[1], owner="doomed")
        lk = c.lock("killed:k", ttl=300)
        assert lk.acquire(wait=0)
        print(lk.fencing_token, flush=True)
        time.sleep(600)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, daemon.socket], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip().isdigit(), child.stderr.read() if child.stderr else ""
        assert lock_row(client, "killed:k")["owner"] == "doomed"
        child.kill()
        child.wait(10)
        # The TTL is 300 s: getting the lock within this wait means the disconnect freed it.
        with client.lock("killed:k", ttl=30, wait=20) as lk:
            assert lk.fencing_token > int(line)  # type: ignore[operator]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
