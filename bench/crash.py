#!/usr/bin/env python3
"""Crash harness for agentd: nothing the daemon said yes to may be lost by a kill -9.

Each round starts the daemon on the same database, runs a mixed load from several
connections (register, add nodes, acquire, heartbeat, commit events, complete, fail, lock
acquire/heartbeat/release), records every answer, and SIGKILLs the daemon at a random
moment. The next round (and a last restart after the final round) first restarts the
daemon and checks what it serves against the answers:

- every acknowledged RegisterTask/AddNodes has all its nodes; a RegisterTask that was in
  flight at the kill is there whole or not at all;
- every acknowledged CompleteNode/FailNode left its node COMPLETED/FAILED with the payload
  sent, and its event is in the journal; every acknowledged CommitEvent is in the journal;
- the journal of each task has seq 1..n with no gap;
- every acknowledged lease and lock grant is held, released or expired as its answers imply
  (held before its earliest possible expiry; gone, and for a lease journaled LEASE_EXPIRED,
  after its latest possible expiry; gone after an acknowledged release);
- fencing tokens never repeat and rise across restarts;
- no node is RUNNING, and no lock is held, under a lease that no acquire handed out (every
  holder is an acknowledged grant, or a request that was still unanswered at the kill).

Prints one summary line, `rounds R, acknowledged N, lost L`, and exits 1 when anything
acknowledged was lost or an invariant broke (each problem on its own line before it).

    python3 bench/crash.py --agentd .build/release/agentd --sync normal

With `--power-loss` the daemon runs on the power-loss simulator (AGENTD_TEST_POWER_LOSS=1: a
SQLite VFS that keeps every write since a file's last sync in memory), so each kill is a power
cut: what was not synced is gone. What a mode promises is then checked:

- `--sync full`: nothing acknowledged is lost;
- `--sync normal`: nothing acknowledged more than the sync interval plus `--window-margin`
  before the cut is lost; what was acknowledged later is treated like a request still in
  flight (there whole or not at all);
- in both, fencing tokens never repeat (a token handed out just before the cut included),
  every journal stays gapless, and `PRAGMA integrity_check` is ok on the files as the cut left
  them (a copy of the database and its WAL, opened by Python's sqlite3).

Every third round runs a light load (each connection idles up to 20 ms between requests): no
checkpoint comes, and only the interval sync bounds what a cut takes.

Every `--checkpoint-every`th round cuts in the middle of a checkpoint on purpose: the daemon
checkpoints at a low WAL size (AGENTD_TEST_CHECKPOINT_PAGES) and its first write to the
database file of a checkpoint creates a mark file and pauses (AGENTD_TEST_CHECKPOINT_MARK);
the harness cuts as soon as the mark appears. Other rounds checkpoint at random low sizes,
so cuts also land around WAL restarts. Before each restart the -shm file is left, deleted or
overwritten with garbage (after a power cut it holds anything).

    python3 bench/crash.py --power-loss --sync full
    python3 bench/crash.py --power-loss --sync normal
"""

import argparse
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

MARGIN = 0.35  # seconds of slack around the daemon's reading of the clock


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Closed(Exception):
    """The daemon went away (killed): no answer for what is in flight."""


class Client:
    """One connection; request lines out, answer lines in."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buffer = b""
        self.next_id = 1

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, method, params):
        request_id = self.next_id
        self.next_id += 1
        line = json.dumps({"id": request_id, "method": method, "params": params}) + "\n"
        try:
            self.sock.sendall(line.encode())
        except OSError as error:
            raise Closed(str(error))
        return request_id

    def read(self):
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except (OSError, socket.timeout) as error:
                raise Closed(str(error))
            if not chunk:
                raise Closed("EOF")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def call(self, method, params=None):
        request_id = self.send(method, params or {})
        answer = self.read()
        if answer.get("id") != request_id:
            raise RuntimeError("answer to %s has id %r, expected %d" % (method, answer.get("id"), request_id))
        if "error" in answer:
            raise RuntimeError("%s %s: %s" % (method, canonical(params), answer["error"]))
        return answer["result"]


class Record:
    """One request and, if it came, its answer."""

    __slots__ = ("round", "method", "params", "sent", "received", "answer", "tag", "uncertain")

    def __init__(self, round_, method, params, tag=None):
        self.round = round_
        self.method = method
        self.params = params
        self.tag = tag
        self.sent = time.time()
        self.received = None
        self.answer = None
        # Acknowledged within the window a power cut may take (normal mode): checked like a
        # request still in flight, there or not.
        self.uncertain = False

    @property
    def acknowledged(self):
        """A success answer reached the client (whether or not the mode promises it survives)."""
        return self.answer is not None and "result" in self.answer and "error" not in self.answer

    @property
    def answered(self):
        return self.answer is not None and not self.uncertain

    @property
    def ok(self):
        return self.acknowledged and not self.uncertain

    @property
    def result(self):
        return self.answer.get("result") if self.answer else None


class Daemon:
    def __init__(self, binary, directory, sync, node_timeout, sync_interval=None, power_loss=False):
        self.binary = binary
        self.directory = directory
        self.socket = os.path.join(directory, "d.sock")
        self.db = os.path.join(directory, "state.db")
        self.sync = sync
        self.node_timeout = node_timeout
        self.sync_interval = sync_interval
        self.power_loss = power_loss
        self.process = None
        self.starts = 0

    def start(self, timeout=15.0, extra_env=None):
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTD_")}
        env["AGENTD_HOME"] = os.path.join(self.directory, "home")
        if self.power_loss:
            env["AGENTD_TEST_POWER_LOSS"] = "1"
        env.update(extra_env or {})
        arguments = [self.binary, "serve", "--socket", self.socket, "--db", self.db, "--sync", self.sync,
                     "--node-timeout", str(self.node_timeout)]
        if self.sync_interval is not None:
            arguments += ["--sync-interval", str(self.sync_interval)]
        log = open(os.path.join(self.directory, "stderr.%d.log" % self.starts), "wb")
        self.process = subprocess.Popen(arguments, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.time() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("daemon exited with %s at start:\n%s" % (self.process.returncode, self.stderr()))
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.socket)
                probe.close()
                return
            except OSError:
                probe.close()
            if time.time() > deadline:
                raise RuntimeError("daemon not accepting within %.0f s:\n%s" % (timeout, self.stderr()))
            time.sleep(0.005)

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stderr(self):
        path = os.path.join(self.directory, "stderr.%d.log" % self.starts)
        try:
            with open(path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""


class Shared:
    """What all workers of a round can see: the tasks acknowledged so far."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tasks = []  # (task_id, [node_ids])


class Worker(threading.Thread):
    def __init__(self, number, round_, path, shared, rng, stop, keys, pause=0.0):
        super().__init__(daemon=True)
        self.pause = pause  # longest idle time between requests (light load), seconds
        self.number = number
        self.round = round_
        self.path = path
        self.shared = shared
        self.rng = rng
        self.stop = stop
        self.keys = keys
        self.records = []
        self.leases = {}  # lease_id -> (task_id, node_id)
        self.locks = {}  # key -> lease_id
        self.serial = 0
        self.error = None

    def tag(self):
        self.serial += 1
        return "w%d-r%d-%d" % (self.number, self.round, self.serial)

    def run(self):
        try:
            self.client = Client(self.path)
        except OSError:
            return
        try:
            while not self.stop.is_set():
                if self.pause:
                    time.sleep(self.rng.uniform(0, self.pause))
                if self.rng.random() < 0.15:
                    self.burst()
                else:
                    self.one()
        except Closed:
            pass
        except Exception as error:  # a harness bug or a malformed answer: report it
            self.error = "%s: %r" % (type(error).__name__, error)
        finally:
            self.client.close()

    # Requests

    def exchange(self, records):
        """Send every record's request, then read their answers in order."""
        ids = []
        for record in records:
            self.records.append(record)
            record.sent = time.time()
            ids.append(self.client.send(record.method, record.params))
        for request_id, record in zip(ids, records):
            answer = self.client.read()
            if answer.get("id") != request_id:
                raise RuntimeError("answer out of order: %r for id %d" % (answer, request_id))
            record.received = time.time()
            record.answer = answer
            self.absorb(record)

    def absorb(self, record):
        """Update what this worker holds from an answer."""
        m, p, r = record.method, record.params, record.result
        if not record.ok:
            if m in ("HeartbeatNode", "CompleteNode", "FailNode", "CommitEvent"):
                self.leases.pop(p.get("lease_id"), None)
            if m in ("HeartbeatResourceLock", "ReleaseResourceLock"):
                self.locks.pop(p["resource_key"], None)
            return
        if m == "RegisterTask":
            with self.shared.lock:
                self.shared.tasks.append((r["task_id"], [n["id"] for n in p["initial_nodes"]]))
        elif m == "AcquireNextNode" and r is not None:
            self.leases[r["lease_id"]] = (r["task_id"], r["node_id"])
        elif m in ("CompleteNode", "FailNode"):
            self.leases.pop(p["lease_id"], None)
        elif m == "AcquireResourceLock" and r is not None:
            self.locks[r["resource_key"]] = r["lease_id"]
        elif m == "ReleaseResourceLock":
            self.locks.pop(p["resource_key"], None)

    def pick_task(self):
        with self.shared.lock:
            if not self.shared.tasks:
                return None
            recent = self.shared.tasks[-20:]
            return self.rng.choice(recent)

    def new_nodes(self, count, existing):
        nodes = []
        ids = list(existing)
        for _ in range(count):
            node_id = str(uuid.uuid4())
            deps = []
            if ids and self.rng.random() < 0.6:
                deps = self.rng.sample(ids, min(len(ids), self.rng.randint(1, 2)))
            nodes.append({"id": node_id, "dependencies": deps, "payload_schema": {"w": self.number}})
            ids.append(node_id)
        return nodes

    def register(self):
        nodes = self.new_nodes(self.rng.randint(1, 6), [])
        return Record(self.round, "RegisterTask",
                      {"goal": "crash %s" % self.tag(), "context": {"round": self.round}, "initial_nodes": nodes})

    def add_nodes(self):
        task = self.pick_task()
        if task is None:
            return self.register()
        task_id, existing = task
        nodes = self.new_nodes(self.rng.randint(1, 3), existing[-4:])
        return Record(self.round, "AddNodes", {"task_id": task_id, "nodes": nodes})

    def acquire(self):
        task = self.pick_task()
        if task is None:
            return self.register()
        tag = self.tag()
        return Record(self.round, "AcquireNextNode",
                      {"task_id": task[0], "lease_owner": tag, "lease_ttl_secs": self.rng.choice([1, 2, 3, 60])}, tag)

    def lease_op(self):
        lease_id = self.rng.choice(list(self.leases))
        task_id, node_id = self.leases[lease_id]
        base = {"task_id": task_id, "node_id": node_id, "lease_id": lease_id}
        roll = self.rng.random()
        if roll < 0.25:
            return Record(self.round, "HeartbeatNode", dict(base, lease_ttl_secs=self.rng.choice([1, 2, 3, 60])))
        if roll < 0.60:
            return Record(self.round, "CommitEvent",
                          dict(base, action_type="PROGRESS", payload={"tag": self.tag(), "n": self.rng.random()}))
        if roll < 0.88:
            return Record(self.round, "CompleteNode", dict(base, result_payload={"done": self.tag()}))
        return Record(self.round, "FailNode", dict(base, error_payload={"failed": self.tag()}))

    def lock_acquire(self, avoid=()):
        free = [k for k in self.keys if k not in self.locks and k not in avoid]
        if not free:
            return None
        tag = self.tag()
        return Record(self.round, "AcquireResourceLock",
                      {"resource_key": self.rng.choice(free), "owner": tag, "ttl_secs": self.rng.choice([1, 2, 3, 60]),
                       "metadata": {"tag": tag}}, tag)

    def lock_op(self):
        key = self.rng.choice(list(self.locks))
        lease_id = self.locks[key]
        if self.rng.random() < 0.35:
            return Record(self.round, "HeartbeatResourceLock",
                          {"resource_key": key, "lease_id": lease_id, "ttl_secs": self.rng.choice([1, 2, 3, 60])})
        return Record(self.round, "ReleaseResourceLock", {"resource_key": key, "lease_id": lease_id})

    def one(self):
        roll = self.rng.random()
        if roll < 0.10:
            record = self.register()
        elif roll < 0.15:
            record = self.add_nodes()
        elif roll < 0.35:
            record = self.acquire()
        elif roll < 0.70 and self.leases:
            record = self.lease_op()
        elif roll < 0.82:
            record = self.lock_acquire() or self.acquire()
        elif self.locks:
            record = self.lock_op()
        else:
            record = self.acquire()
        self.exchange([record])

    def burst(self):
        """Several independent requests pipelined, so one loop turn commits many."""
        records = []
        keys = set()
        for _ in range(self.rng.randint(2, 8)):
            roll = self.rng.random()
            if roll < 0.3:
                records.append(self.register())
            elif roll < 0.6:
                records.append(self.acquire())
            elif roll < 0.8 and self.leases:
                lease_id = self.rng.choice(list(self.leases))
                task_id, node_id = self.leases[lease_id]
                records.append(Record(self.round, "CommitEvent",
                                      {"task_id": task_id, "node_id": node_id, "lease_id": lease_id,
                                       "payload": {"tag": self.tag()}}))
            else:
                record = self.lock_acquire(avoid=keys)
                if record:
                    keys.add(record.params["resource_key"])
                    records.append(record)
        if records:
            self.exchange(records)


class Checker:
    """Everything acknowledged so far, checked against what a restarted daemon serves."""

    def __init__(self):
        self.records = []  # every round's records
        self.acknowledged = 0
        self.problems = {}  # text -> lost?
        self.kill_time = 0.0
        self.last_round = []  # the records of the round just killed
        self.max_token_before = 0  # the highest fencing token acknowledged in earlier rounds
        self.seen_tokens = {}
        self.window = 0.0  # seconds before a cut in which acknowledged writes may be lost
        self.in_window = 0  # acknowledged writes that fell in that window
        self.window_lost = set()  # of those, the writes the restart did not have (allowed)
        self.oldest_lost = 0.0  # how long before its cut the oldest of them was acknowledged

    def fail(self, lost, text):
        self.problems[("LOST: " if lost else "VIOLATION: ") + text] = lost

    @property
    def lost(self):
        return sum(1 for lost in self.problems.values() if lost)

    def add_round(self, records):
        if self.window > 0:
            for r in records:
                if r.acknowledged and r.received > self.kill_time - self.window:
                    r.uncertain = True
                    self.in_window += 1
        self.records.extend(records)
        self.last_round = records

    def check(self, client, round_):
        """Checks after the restart that follows round `round_`."""
        before = time.time()
        task_ids = self.all_tasks(client)
        statuses = dict(zip(task_ids, self.pipelined(client, "TaskStatus", [{"task_id": t} for t in task_ids])))
        journals = dict(zip(task_ids, self.journals(client, task_ids)))
        locks = client.call("ListResourceLocks", {})["locks"]
        after = time.time()

        nodes = {}  # node_id -> node object
        for task_id, status in statuses.items():
            for node in status["nodes"]:
                nodes[node["id"]] = node
            counts = {}
            for node in status["nodes"]:
                counts[node["status"]] = counts.get(node["status"], 0) + 1
            reported = {k: v for k, v in status["counts"].items() if k != "BLOCKED"}
            if counts != reported:
                self.fail(False, "task %s counts %s but its nodes say %s" % (task_id, reported, counts))
            seqs = [e["seq"] for e in journals[task_id]]
            if seqs != list(range(1, len(seqs) + 1)):
                self.fail(False, "task %s journal seqs are not 1..n: %s" % (task_id, seqs[:50]))
        events = {}
        for journal in journals.values():
            for event in journal:
                events[event["id"]] = event

        self.acknowledged = sum(1 for r in self.records if r.acknowledged)
        self.check_durable(statuses, nodes, events, self.records, lambda r: r.ok,
                           lambda r, text: self.fail(True, text))
        # What the cut was allowed to take: counted, not a failure.
        self.check_durable(statuses, nodes, events, self.last_round, lambda r: r.uncertain and r.acknowledged,
                           self.lost_in_window)
        self.check_unanswered_batches(statuses, nodes)
        self.check_leases(round_, nodes, journals, before, after)
        self.check_locks(round_, locks, before, after)
        self.check_tokens(round_)

    def all_tasks(self, client):
        ids, after = [], None
        while True:
            params = {"limit": 1000}
            if after:
                params["after"] = after
            result = client.call("ListTasks", params)
            ids.extend(t["id"] for t in result["tasks"])
            after = result["next_after"]
            if not after:
                return ids

    def pipelined(self, client, method, params_list, window=256):
        """One request per params, `window` in flight at a time; the results in order."""
        results = []
        for start in range(0, len(params_list), window):
            chunk = params_list[start:start + window]
            ids = [client.send(method, p) for p in chunk]
            for request_id, p in zip(ids, chunk):
                answer = client.read()
                if answer.get("id") != request_id or "result" not in answer:
                    raise RuntimeError("%s %s answered %s" % (method, canonical(p), answer))
                results.append(answer["result"])
        return results

    def journals(self, client, task_ids):
        firsts = self.pipelined(client, "ReadEvents", [{"task_id": t, "after_seq": 0, "limit": 1000} for t in task_ids])
        journals = []
        for task_id, first in zip(task_ids, firsts):
            events = list(first["events"])
            while len(events) % 1000 == 0 and events:
                more = client.call("ReadEvents", {"task_id": task_id, "after_seq": events[-1]["seq"], "limit": 1000})
                if not more["events"]:
                    break
                events.extend(more["events"])
            journals.append(events)
        return journals

    def lost_in_window(self, record, text):
        if id(record) not in self.window_lost:
            self.window_lost.add(id(record))
            self.oldest_lost = max(self.oldest_lost, self.kill_time - record.received)

    def check_durable(self, statuses, nodes, events, records, chosen, lost):
        """Every chosen acknowledged write is there; `lost(record, text)` for each that is not."""
        for r in records:
            if r.method != "RegisterTask" or not chosen(r):
                continue
            task_id = r.result["task_id"]
            status = statuses.get(task_id)
            if status is None:
                lost(r, "RegisterTask acknowledged %s is gone" % task_id)
                continue
            if status["task"]["goal"] != r.params["goal"]:
                lost(r, "task %s goal %r, registered %r" % (task_id, status["task"]["goal"], r.params["goal"]))
            ids = [n["id"] for n in status["nodes"]]
            sent = [n["id"] for n in r.params["initial_nodes"]]
            if ids[:len(sent)] != sent:
                lost(r, "task %s nodes %s, registered %s first" % (task_id, ids, sent))
        for r in records:
            if not chosen(r):
                continue
            p = r.params
            if r.method == "AddNodes":
                for node in p["nodes"]:
                    if node["id"] not in nodes:
                        lost(r, "AddNodes acknowledged node %s is gone" % node["id"])
            elif r.method in ("CompleteNode", "FailNode"):
                want = "COMPLETED" if r.method == "CompleteNode" else "FAILED"
                payload = p["result_payload"] if r.method == "CompleteNode" else p["error_payload"]
                node = nodes.get(p["node_id"])
                if node is None or node["status"] != want or canonical(node["result_payload"]) != canonical(payload):
                    lost(r, "%s acknowledged for node %s, now %s" % (
                        r.method, p["node_id"], None if node is None else (node["status"], node["result_payload"])))
                event = events.get(r.result["event_id"])
                action = "COMPLETE_NODE" if r.method == "CompleteNode" else "FAIL_NODE"
                if event is None or event["action_type"] != action or event["node_id"] != p["node_id"]:
                    lost(r, "%s event %s is not in the journal (%s)" % (r.method, r.result["event_id"], event))
            elif r.method == "CommitEvent":
                event = events.get(r.result["event_id"])
                if (event is None or event["node_id"] != p["node_id"]
                        or event["action_type"] != p.get("action_type", "COMMIT_EVENT")
                        or canonical(event["payload"]) != canonical(p["payload"])):
                    lost(r, "CommitEvent %s acknowledged, journal has %s" % (r.result["event_id"], event))

    def check_unanswered_batches(self, statuses, nodes):
        """A batch is all or nothing: a RegisterTask or AddNodes unanswered at the kill is
        there whole or not at all."""
        goals = {status["task"]["goal"]: status for status in statuses.values()}
        for r in self.records:
            if r.answered or r.method not in ("RegisterTask", "AddNodes"):
                continue
            if r.method == "RegisterTask":
                sent = [n["id"] for n in r.params["initial_nodes"]]
                status = goals.get(r.params["goal"])
                if status is not None and [n["id"] for n in status["nodes"]][:len(sent)] != sent:
                    self.fail(False, "RegisterTask in flight at the kill is there without all its nodes: %s" % r.params["goal"])
            else:
                sent = [n["id"] for n in r.params["nodes"]]
                present = [n for n in sent if n in nodes]
                if present and len(present) != len(sent):
                    self.fail(False, "AddNodes in flight at the kill is half there: %d of %d nodes" % (len(present), len(sent)))

    def lease_window(self, records):
        """Earliest and latest instant a lease or lock can expire, from its requests in the
        order they were sent (one at a time). The last acknowledged one set the expiry, unless
        one sent after it, unanswered, was committed before the kill."""
        # The daemon's deadlines fall on whole seconds: the first at or after its clock plus the
        # TTL (the original's wire keeps whole seconds), so a lease may run up to a second past
        # the instant the answer arrived plus the TTL.
        lo = hi = None
        for r in records:
            ttl = r.params.get("lease_ttl_secs", r.params.get("ttl_secs"))
            if r.ok:
                lo, hi = r.sent + ttl, math.ceil(r.received + ttl)
            elif not r.answered and lo is not None:
                lo, hi = min(lo, r.sent + ttl), max(hi, math.ceil(self.kill_time + ttl))
        return lo, hi

    def check_leases(self, round_, nodes, journals, before, after):
        acquires = {}
        for r in self.records:
            if r.method == "AcquireNextNode":
                acquires[r.tag] = r
        # No node runs under a lease nobody was given.
        running_leases = set()
        for node in nodes.values():
            if node["status"] != "RUNNING":
                continue
            if node["lease_id"] in running_leases:
                self.fail(False, "lease %s holds two nodes" % node["lease_id"])
            running_leases.add(node["lease_id"])
            r = acquires.get(node["lease_owner"])
            if r is None:
                self.fail(False, "node %s RUNNING under lease %s of owner %r that no acquire asked for" % (
                    node["id"], node["lease_id"], node["lease_owner"]))
            elif r.answered and (not r.ok or r.result is None or r.result["lease_id"] != node["lease_id"]
                                 or r.result["node_id"] != node["id"]):
                self.fail(False, "node %s RUNNING under lease %s, but the acquire %s was answered %s" % (
                    node["id"], node["lease_id"], r.tag, r.answer))
        # Every acknowledged lease of the last round: held, finished or expired as answered.
        by_lease = {}
        for r in self.last_round:
            if r.method in ("AcquireNextNode", "HeartbeatNode", "CompleteNode", "FailNode"):
                lease = r.result["lease_id"] if r.method == "AcquireNextNode" and r.ok and r.result else r.params.get("lease_id")
                if lease:
                    by_lease.setdefault(lease, []).append(r)
        expired = set()
        for journal in journals.values():
            for event in journal:
                if event["action_type"] == "LEASE_EXPIRED":
                    expired.add(event["payload"].get("lease_id"))
        for lease, records in by_lease.items():
            grant = records[0]
            if grant.method != "AcquireNextNode" or not grant.ok:
                continue
            node = nodes.get(grant.result["node_id"])
            if node is None:
                self.fail(True, "acquired node %s is gone" % grant.result["node_id"])
                continue
            finals = [r for r in records if r.method in ("CompleteNode", "FailNode")]
            if any(r.ok for r in finals):
                continue  # checked as durable
            if any(not r.answered for r in finals):
                continue  # may or may not have been committed
            window = [r for r in records if r.method in ("AcquireNextNode", "HeartbeatNode")]
            lo, hi = self.lease_window(window)
            holds = node["status"] == "RUNNING" and node["lease_id"] == lease
            if after < lo - MARGIN and not holds:
                self.fail(True, "lease %s on node %s should run until %.2f (now %.2f) but node is %s under %s" % (
                    lease, node["id"], lo, after, node["status"], node["lease_id"]))
            if before > hi + MARGIN:
                if holds:
                    self.fail(False, "lease %s on node %s should have expired by %.2f (now %.2f)" % (
                        lease, node["id"], hi, before))
                elif lease not in expired:
                    self.fail(False, "lease %s expired without a LEASE_EXPIRED event" % lease)

    def check_locks(self, round_, locks, before, after):
        held = {lock["resource_key"]: lock for lock in locks}
        grants = {}  # key -> acknowledged grants, by token
        requests = {}
        for r in self.records:
            if r.method == "AcquireResourceLock":
                requests[r.tag] = r
                if r.ok and r.result is not None:
                    grants.setdefault(r.result["resource_key"], []).append(r)
        # Every holder was handed its lock by some acquire.
        for key, lock in held.items():
            r = requests.get(lock["owner"])
            if r is None:
                self.fail(False, "lock %s held by owner %r that no acquire asked for" % (key, lock["owner"]))
            elif r.answered and (not r.ok or r.result is None or r.result["lease_id"] != lock["lease_id"]
                                 or r.result["fencing_token"] != lock["fencing_token"]):
                self.fail(False, "lock %s held under %s, but its acquire was answered %s" % (key, lock["lease_id"], r.answer))
        lock_ops = {}  # lease id -> this round's heartbeats and releases, in order
        for r in self.last_round:
            if r.method in ("HeartbeatResourceLock", "ReleaseResourceLock"):
                lock_ops.setdefault(r.params["lease_id"], []).append(r)
        for key, acked in grants.items():
            if not key.startswith("r%d:" % round_):
                continue
            acked.sort(key=lambda r: r.result["fencing_token"])
            last = acked[-1]
            lease = last.result["lease_id"]
            holder = held.get(key)
            for older in acked[:-1]:
                if holder and holder["lease_id"] == older.result["lease_id"]:
                    self.fail(False, "lock %s is back with lease %s after a later grant" % (key, holder["lease_id"]))
            if holder and holder["lease_id"] != lease and holder["fencing_token"] <= last.result["fencing_token"]:
                self.fail(False, "lock %s holder token %d is not above the last acknowledged grant's %d" % (
                    key, holder["fencing_token"], last.result["fencing_token"]))
            later = lock_ops.get(lease, [])
            holds = holder is not None and holder["lease_id"] == lease
            releases = [r for r in later if r.method == "ReleaseResourceLock"]
            if any(r.ok for r in releases):
                if holds:
                    self.fail(True, "lock %s released (acknowledged) but still held by %s" % (key, lease))
                continue
            if any(not r.answered for r in releases):
                continue
            lo, hi = self.lease_window([last] + [r for r in later if r.method == "HeartbeatResourceLock"])
            if after < lo - MARGIN and not holds:
                self.fail(True, "lock %s grant %s should be held until %.2f (now %.2f), holder %s" % (
                    key, lease, lo, after, holder))
            if before > hi + MARGIN and holds:
                self.fail(False, "lock %s grant %s should have expired by %.2f (now %.2f)" % (key, lease, hi, before))

    def check_tokens(self, round_):
        # Every token a client was handed counts, also one a power cut may have taken the grant of.
        mine = [r for r in self.last_round if r.method == "AcquireResourceLock" and r.acknowledged and r.result is not None]
        for r in mine:
            token = r.result["fencing_token"]
            if token in self.seen_tokens and self.seen_tokens[token] is not r:
                self.fail(False, "fencing token %d handed out twice" % token)
            self.seen_tokens[token] = r
            if token <= self.max_token_before:
                self.fail(False, "fencing token %d of round %d is not above %d of earlier rounds" % (
                    token, round_, self.max_token_before))
        if mine:
            self.max_token_before = max(self.max_token_before, max(r.result["fencing_token"] for r in mine))


def tamper(path):
    """Lose some acknowledged state on purpose, to show the checks catch it."""
    import sqlite3
    db = sqlite3.connect(path)
    db.execute("DELETE FROM event_journal WHERE rowid IN (SELECT rowid FROM event_journal ORDER BY rowid DESC LIMIT 20)")
    db.execute("DELETE FROM resource_locks")
    db.execute("UPDATE dag_nodes SET status = 'PENDING', result_payload = NULL WHERE rowid IN "
               "(SELECT rowid FROM dag_nodes WHERE status = 'COMPLETED' ORDER BY updated_at DESC LIMIT 5)")
    db.commit()
    db.close()


def integrity_check(db_path, directory):
    """PRAGMA integrity_check on the files as the kill left them: a copy of the database and its
    WAL (not the -shm), so the check neither joins the dead daemon's wal-index nor changes what
    the restart will read."""
    import sqlite3
    copy = tempfile.mkdtemp(prefix="integrity-", dir=directory)
    try:
        for suffix in ("", "-wal"):
            if os.path.exists(db_path + suffix):
                shutil.copyfile(db_path + suffix, os.path.join(copy, "state.db" + suffix))
        db = sqlite3.connect(os.path.join(copy, "state.db"))
        try:
            return [row[0] for row in db.execute("PRAGMA integrity_check")]
        finally:
            db.close()
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def disturb_shm(db_path, rng):
    """After a power cut the -shm file holds anything: leave it, delete it, or fill it with garbage.
    The first connection after a cut must rebuild the wal-index from the WAL regardless."""
    shm = db_path + "-shm"
    if not os.path.exists(shm):
        return "absent"
    choice = rng.choice(["kept", "deleted", "garbage"])
    if choice == "deleted":
        os.unlink(shm)
    elif choice == "garbage":
        size = os.path.getsize(shm)
        with open(shm, "r+b") as f:
            f.write(bytes(rng.getrandbits(8) for _ in range(size)))
    return choice


def find_binary(explicit):
    candidates = [explicit] if explicit else [os.environ.get("AGENTD_BIN"), ".build/release/agentd", ".build/debug/agentd"]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return os.path.abspath(path)
    sys.exit("crash: no agentd binary (build it with `swift build -c release`, or pass --agentd PATH)")


def main():
    parser = argparse.ArgumentParser(description="Kill agentd at random moments; check nothing acknowledged is lost.")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--sync", choices=["normal", "full"], default="normal")
    parser.add_argument("--workers", type=int, default=8, help="concurrent connections")
    parser.add_argument("--max-run", type=float, default=1.5, help="longest load before the kill, seconds")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--agentd", default=None, help="the agentd binary (default .build/release/agentd)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--tamper", action="store_true",
                        help="self-test: delete the newest rows behind the daemon's back before each restart; "
                             "the harness must then report losses")
    parser.add_argument("--power-loss", action="store_true",
                        help="run the daemon on the power-loss simulator: each kill loses what was not synced")
    parser.add_argument("--sync-interval", type=int, default=None,
                        help="the daemon's --sync-interval in ms (default: the daemon's, 50)")
    parser.add_argument("--window-margin", type=float, default=0.25,
                        help="power loss, normal mode: seconds of slack beyond the sync interval (default 0.25)")
    parser.add_argument("--promised-window-ms", type=int, default=None,
                        help="power loss, normal mode: the window the check allows, if not the sync interval "
                             "(self-test: a longer --sync-interval with the default window must report losses)")
    parser.add_argument("--checkpoint-every", type=int, default=4,
                        help="power loss: every Nth round cuts in the middle of a checkpoint, and the others "
                             "checkpoint at random low WAL sizes (0: neither; checkpoints at the daemon's size)")
    args = parser.parse_args()

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    binary = find_binary(args.agentd)
    directory = tempfile.mkdtemp(prefix="agentd-crash-", dir="/tmp")
    os.makedirs(os.path.join(directory, "home"), mode=0o700)
    daemon = Daemon(binary, directory, args.sync, node_timeout=5, sync_interval=args.sync_interval,
                    power_loss=args.power_loss)
    checker = Checker()
    if args.power_loss and args.sync == "normal":
        promised = args.promised_window_ms if args.promised_window_ms is not None else (args.sync_interval or 50)
        checker.window = promised / 1000.0 + args.window_margin
    mark = os.path.join(directory, "checkpoint.mark")
    cut_rounds = {r for r in range(1, args.rounds + 1)
                  if args.power_loss and args.checkpoint_every > 0 and r % args.checkpoint_every == 0}
    light_rounds = {r for r in range(1, args.rounds + 1)
                    if args.power_loss and r % 3 == 2 and r not in cut_rounds}
    cuts_in_checkpoint = 0
    shm_states = {}

    def round_env(round_):
        """Test-only settings of the daemon that serves round `round_`."""
        if not args.power_loss or args.checkpoint_every <= 0 or round_ > args.rounds:
            return {}
        if round_ in cut_rounds:
            return {"AGENTD_TEST_CHECKPOINT_PAGES": "200", "AGENTD_TEST_CHECKPOINT_MARK": mark}
        if round_ in light_rounds:
            return {}
        pages = rng.choice([None, 300, 1000, 3000])
        return {"AGENTD_TEST_CHECKPOINT_PAGES": str(pages)} if pages else {}

    status = 0
    try:
        daemon.start(extra_env=round_env(1))
        for round_ in range(1, args.rounds + 1):
            shared = Shared()
            stop = threading.Event()
            keys = ["r%d:k%d" % (round_, i) for i in range(12)]
            pause = 0.02 if round_ in light_rounds else 0.0
            workers = [Worker(i, round_, daemon.socket, shared, random.Random(rng.random()), stop, keys, pause)
                       for i in range(args.workers)]
            for worker in workers:
                worker.start()
            if round_ in cut_rounds:
                if os.path.exists(mark):
                    os.unlink(mark)  # a checkpoint that began before the load: wait for the next one
                # Cut while a checkpoint is copying pages into the database file (it pauses there).
                deadline = time.time() + 10
                while not os.path.exists(mark) and time.time() < deadline and daemon.process.poll() is None:
                    time.sleep(0.001)
                if os.path.exists(mark):
                    cuts_in_checkpoint += 1
                    os.unlink(mark)
            else:
                time.sleep(rng.uniform(0.02, args.max_run))
            daemon.kill()
            checker.kill_time = time.time()
            stop.set()
            for worker in workers:
                worker.join(timeout=15)
                if worker.is_alive():
                    raise RuntimeError("worker %d did not stop after the kill" % worker.number)
                if worker.error:
                    raise RuntimeError("worker %d: %s" % (worker.number, worker.error))
            checker.add_round([r for worker in workers for r in worker.records])
            if args.tamper:
                tamper(daemon.db)
            findings = integrity_check(daemon.db, directory)
            if findings != ["ok"]:
                checker.fail(False, "integrity_check after the kill of round %d: %s" % (round_, "; ".join(findings[:10])))
            if args.power_loss:
                shm = disturb_shm(daemon.db, rng)
                shm_states[shm] = shm_states.get(shm, 0) + 1
            daemon.start(extra_env=round_env(round_ + 1))
            client = Client(daemon.socket)
            try:
                checker.check(client, round_)
            finally:
                client.close()
            if args.verbose:
                answered = sum(1 for w in workers for r in w.records if r.answered)
                print("round %d: %d answers, %d acknowledged writes so far, %d problems" % (
                    round_, answered, checker.acknowledged, len(checker.problems)), file=sys.stderr)
        daemon.kill()
    except Exception as error:
        daemon.kill()
        print("crash: harness error (seed %d, kept %s): %s" % (seed, directory, error), file=sys.stderr)
        print(daemon.stderr(), file=sys.stderr)
        return 2
    for problem in checker.problems:
        print(problem)
    print("rounds %d, acknowledged %d, lost %d" % (args.rounds, checker.acknowledged, checker.lost))
    if args.power_loss:
        print("power loss (--sync %s): %d rounds of light load; %d of %d cuts in the middle of a checkpoint; integrity_check ok after every cut: %s; "
              "-shm after the cuts: %s" % (
                  args.sync, len(light_rounds), cuts_in_checkpoint, len(cut_rounds) if cut_rounds else 0,
                  "yes" if not any("integrity_check" in p for p in checker.problems) else "NO",
                  ", ".join("%s %d" % kv for kv in sorted(shm_states.items()))))
        if checker.window > 0:
            print("acknowledged within %.0f ms before a cut (may be lost in normal mode): %d, not kept: %d, "
                  "the oldest of them acknowledged %.0f ms before its cut" % (
                      checker.window * 1000, checker.in_window, len(checker.window_lost), checker.oldest_lost * 1000))
    if checker.problems:
        print("crash: %d problem(s); seed %d; state kept in %s" % (len(checker.problems), seed, directory), file=sys.stderr)
        status = 1
    elif not args.keep:
        shutil.rmtree(directory, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
