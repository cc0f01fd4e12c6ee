#!/usr/bin/env python3
"""A fixed request mix against agentd, one phase per request type, for profilers.

Each phase sends N requests of one method from K connections (one request in flight per
connection, so a loop turn handles up to K of them and commits once), then marks the end of
the phase so that a profiler can attribute what the daemon did to that method:

    # instructions per request by method (callgrind dumps one profile per phase)
    python3 bench/profile.py --tool callgrind --agentd .build/release/agentd
    # system calls per request by method
    python3 bench/profile.py --tool strace --agentd .build/release/agentd

Phases: RegisterTask (one node each), AddNodes (one node), AcquireNextNode, HeartbeatNode,
CompleteNode (the lease cycle, on a task per connection, as `bench leases` does),
AcquireResourceLock and ReleaseResourceLock (a key per connection, as `bench locks`).
With --tool callgrind, each phase's profile is in DIR/callgrind.out.PID.N (see --keep) and
a summary per phase is printed: instructions per request, split into SQLite, libc,
the Swift runtime and agentd's own code.

--target redis|beanstalkd profiles bench/compare's anchors the same way, on the traffic the
bench sends them (profile_anchors.py): redis-server with AOF (appendfsync everysec) on the lock
cycle, SET NX PX then the EVALSHA compare-and-delete; beanstalkd with its binlog on the lease
cycle, put, reserve, touch, delete. --no-persistence starts them without their log.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from profile_anchors import TARGETS, Lines, connect_unix


class Conn:
    def __init__(self, path):
        self.sock = connect_unix(path)
        self.lines = Lines(self.sock, b"\n")

    def send(self, obj):
        self.sock.sendall((json.dumps(obj, separators=(",", ":")) + "\n").encode())

    def read(self):
        answer = json.loads(self.lines.next())
        if "error" in answer:
            raise SystemExit(f"error answer: {answer}")
        return answer["result"]


def rounds(conns, make, n):
    """n requests in rounds of one per connection; make(i, conn_index) -> request object."""
    results = []
    sent = 0
    while sent < n:
        batch = min(len(conns), n - sent)
        for k in range(batch):
            conns[k].send(make(sent + k, k))
        for k in range(batch):
            results.append(conns[k].read())
        sent += batch
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", choices=["agentd"] + list(TARGETS), default="agentd",
                    help="the server to profile: agentd, or one of bench/compare's anchors")
    ap.add_argument("--agentd", default=".build/release/agentd")
    ap.add_argument("--redis-server", default="redis-server")
    ap.add_argument("--beanstalkd", default="beanstalkd")
    ap.add_argument("--no-persistence", action="store_true",
                    help="anchors: redis without AOF (compare's redis-mem), beanstalkd without -b")
    ap.add_argument("--tool", choices=["callgrind", "strace", "none"], default="callgrind")
    ap.add_argument("-n", type=int, default=4096, help="requests per phase")
    ap.add_argument("-k", type=int, default=32, help="connections")
    ap.add_argument("--sync", default="normal")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="agentd-profile.")
    anchor = TARGETS.get(args.target)
    env = dict(os.environ)
    if anchor:
        sock = os.path.join(work, args.target + ".sock")
        binary = {"redis": args.redis_server, "beanstalkd": args.beanstalkd}[args.target]
        cmd = anchor.command(binary, work, sock, persistence=not args.no_persistence)
    else:
        sock = os.path.join(work, "d.sock")
        cmd = [args.agentd, "serve", "--socket", sock, "--db", os.path.join(work, "state.db"), "--sync", args.sync]
        env["AGENTD_HOME"] = work
    if args.tool == "callgrind":
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=yes",
               f"--callgrind-out-file={work}/callgrind.out.%p"] + cmd
    elif args.tool == "strace":
        # -s 96: the phase markers must not be cut off in the log.
        cmd = ["strace", "-f", "-s", "96", "-o", f"{work}/strace", "-tt"] + cmd
    daemon = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "log"), "w"))
    for _ in range(3000):
        if os.path.exists(sock):
            break
        time.sleep(0.01)
    else:
        raise SystemExit("no socket")
    conns = [anchor.connect(sock) if anchor else Conn(sock) for _ in range(args.k)]
    n, k = args.n, args.k

    def mark(name):
        if args.tool == "callgrind":
            subprocess.run(["callgrind_control", "--dump=" + name, str(daemon.pid)],
                           stdout=subprocess.DEVNULL, check=True)
        elif args.tool == "strace":
            # A marker the strace log shows between phases.
            conns[0].send(anchor.marker(name) if anchor else {"method": "Health", "params": {"phase": name}})
            conns[0].read()

    phases = []

    def phase(name, make):
        started = time.time()
        out = rounds(conns, make, n)
        mark(name)
        phases.append((name, time.time() - started))
        return out

    if anchor:
        anchor.setup(conns)
        mark("setup")
        anchor.phases(conns, phase)
    else:
        agentd_phases(conns, mark, phase, k)

    for c in conns:
        c.sock.close()
    if args.tool == "strace":
        # SIGTERM to strace detaches it and leaves the daemon running: stop the daemon itself.
        children = subprocess.run(["pgrep", "-P", str(daemon.pid)], capture_output=True, text=True).stdout.split()
        for child in children:
            os.kill(int(child), 15)
    else:
        daemon.terminate()
    daemon.wait()

    names = [p for p, _ in phases]
    if args.tool == "callgrind":
        if anchor:
            report_anchor_callgrind(anchor, work, daemon.pid, names, n, k)
        else:
            report_callgrind(work, daemon.pid, names, n)
        if args.keep:
            print("per-phase profiles: callgrind_annotate", f"{work}/callgrind.out.{daemon.pid}.N (N=2: first phase)")
    elif args.tool == "strace":
        if anchor:
            report_strace(work, names, n, anchor.strace_calls, "phase-", total_column=True)
        else:
            report_strace(work, names, n)
    if args.keep:
        print("kept", work)
    else:
        shutil.rmtree(work)


def agentd_phases(conns, mark, phase, k):
    # Set-up: a task per connection for the lease cycle.
    tasks = [r["task_id"] for r in rounds(conns, lambda i, c: {"id": 1, "method": "RegisterTask",
                                                                "params": {"goal": f"profile {i}"}}, k)]
    mark("setup")
    phase("RegisterTask", lambda i, c: {"id": 1, "method": "RegisterTask",
                                        "params": {"goal": "g", "initial_nodes": [{}]}})
    phase("AddNodes", lambda i, c: {"id": 1, "method": "AddNodes", "params": {"task_id": tasks[c], "nodes": [{}]}})
    acquired = phase("AcquireNextNode", lambda i, c: {"id": 1, "method": "AcquireNextNode",
                                                      "params": {"task_id": tasks[c], "lease_owner": f"w{c}"}})
    phase("HeartbeatNode", lambda i, c: {"id": 1, "method": "HeartbeatNode", "params": {
        "task_id": tasks[c], "node_id": acquired[i]["node_id"], "lease_id": acquired[i]["lease_id"]}})
    phase("CompleteNode", lambda i, c: {"id": 1, "method": "CompleteNode", "params": {
        "task_id": tasks[c], "node_id": acquired[i]["node_id"], "lease_id": acquired[i]["lease_id"],
        "result_payload": {}}})
    locks = phase("AcquireResourceLock", lambda i, c: {"id": 1, "method": "AcquireResourceLock", "params": {
        "resource_key": f"key-{c}-{i}", "owner": f"w{c}", "ttl_secs": 60}})
    phase("ReleaseResourceLock", lambda i, c: {"id": 1, "method": "ReleaseResourceLock", "params": {
        "resource_key": locks[i]["resource_key"], "lease_id": locks[i]["lease_id"]}})


def annotate(path, inclusive):
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--show-percs=no",
                          "--inclusive=" + ("yes" if inclusive else "no"), path],
                         capture_output=True, text=True).stdout
    total, rows = 0, []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(.*)$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = ir
            continue
        rows.append((ir, m.group(2)))
    return total, rows


def report_callgrind(work, pid, names, n):
    files = sorted(glob.glob(f"{work}/callgrind.out.{pid}.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
    # files[0] is the set-up; then one per phase; the final dump at exit is the shutdown.
    print(f"instructions per request (callgrind, {n} requests per phase, K connections, one in flight each)")
    print("  total: everything the daemon's thread ran; handle: decode + Coordinator + encode (inclusive);")
    print("  sql: Store.commit (inclusive), of which rows: the row statements, the rest BEGIN/COMMIT;")
    print("  flush: answers out; exclusive: swift runtime (retain/release/access), malloc+free, memcpy/memset")
    print(f"{'phase':22s} {'total':>8s} {'handle':>8s} {'sql':>8s} {'rows':>8s} {'commit':>8s} {'flush':>7s}"
          f" {'swiftrt':>8s} {'malloc':>8s} {'mem*':>8s}")
    for name, path in zip(names, files[1:1 + len(names)]):
        total, inc = annotate(path, True)
        _, exc = annotate(path, False)

        def inclusive(fragment):
            return max([ir for ir, where in inc if fragment in where] or [0])

        handle = inclusive("RequestHandlerC6handle4line")
        sql = inclusive("AgentdStore0B0C6commit4from")
        rows = inclusive("AgentdStore0B0C5write")
        flush = inclusive("ConnectionC5flushyyF")
        swiftrt = sum(ir for ir, where in exc if ir < total and "libswiftCore" in where)
        malloc = sum(ir for ir, where in exc if ir < total and "malloc/" in where)
        mem = sum(ir for ir, where in exc if ir < total and ("memset" in where or "memmove" in where or "memcpy" in where))
        print(f"{name:22s} {total / n:8.0f} {handle / n:8.0f} {sql / n:8.0f} {rows / n:8.0f} {(sql - rows) / n:8.0f}"
              f" {flush / n:7.0f} {swiftrt / n:8.0f} {malloc / n:8.0f} {mem / n:8.0f}")


def report_anchor_callgrind(anchor, work, pid, names, n, k):
    """The same per-phase dumps as report_callgrind, split the anchor's way (profile_anchors)."""
    files = sorted(glob.glob(f"{work}/callgrind.out.{pid}.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
    print(f"{anchor.name}: instructions per request (callgrind, {n} requests per phase, "
          f"{k} connections, one in flight each)")
    print(anchor.legend)
    print(f"{'phase':22s} " + " ".join(f"{c:>9s}" for c in anchor.columns))
    sums = [0] * len(anchor.columns)
    for name, path in zip(names, files[1:1 + len(names)]):
        total, inc = annotate(path, True)
        _, exc = annotate(path, False)

        def inclusive(fragment):
            return max([ir for ir, where in inc if fragment in where] or [0])

        def exclusive(*fragments):
            return sum(ir for ir, where in exc if ir < total and any(f in where for f in fragments))

        row = anchor.split(total, inclusive, exclusive)
        sums = [a + b for a, b in zip(sums, row)]
        print(f"{name:22s} " + " ".join(f"{v / n:9.0f}" for v in row))
    print(f"{'cycle (sum)':22s} " + " ".join(f"{v / n:9.0f}" for v in sums))


def report_strace(work, names, n, calls=None, marker="Health", total_column=False):
    lines = open(f"{work}/strace").read().splitlines()
    # Split the log at the markers: a read() whose bytes hold the marker (strace escapes the quotes;
    # with threads, the bytes may be on the "<... read resumed>" line).
    segments, current = [], []
    for line in lines:
        current.append(line)
        if marker in line and "phase" in line and ("read(" in line or "read resumed>" in line):
            segments.append(current)
            current = []
    print(f"system calls per request (strace -f, {n} requests per phase)")
    calls = calls or ["read", "write", "writev", "pwrite64", "pread64", "fcntl", "fdatasync", "fsync",
                      "epoll_wait", "mmap", "munmap"]
    last = "all" if total_column else "commits"
    print(f"{'phase':22s} " + " ".join(f"{c:>9s}" for c in calls) + f" {last:>8s}")
    for name, segment in zip(names, segments[1:]):
        counts = {}
        for line in segment:
            m = re.match(r"\d+\s+[\d:.]+\s+(\w+)\(", line)
            if m:
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        if total_column:   # every system call of the phase, per request
            tail = f" {sum(counts.values()) / n:8.3f}"
        else:   # A commit in WAL mode ends with its last frame write; count BEGINs by the fcntl pairs instead.
            tail = f" {counts.get('epoll_wait', 0):8d}"
        print(f"{name:22s} " + " ".join(f"{counts.get(c, 0) / n:9.3f}" for c in calls) + tail)

if __name__ == "__main__":
    main()
