#!/usr/bin/env python3
"""The floor of agentd's persistence, in instructions per request (callgrind).

Builds bench/sqlite_floor.c (a C program that writes the rows agentd writes for each request of
the lock and lease cycles, with agentd's statements and connection settings and nothing else),
has agentd create its schema in a fresh database, and counts each phase under callgrind:

    python3 bench/sqlite_floor.py [--agentd .build/release/agentd] [--turns 64] [--per-turn 32]

Compare with the `sql` column of `bench/profile.py` (same batch of 32 requests a commit): what
agentd's Store spends above the floor is its own (binding, the change set, Swift); the floor is
what the write-through of these rows costs SQLite itself. Needs a C compiler, libsqlite3-dev and
valgrind.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from profile import annotate

# (the phase function in sqlite_floor.c, what it stands for, the rows it writes per request)
PHASES = [
    ("phase_task_register", "RegisterTask", "INSERT global_tasks, INSERT dag_nodes"),
    ("phase_lock_acquire", "AcquireResourceLock", "INSERT OR REPLACE resource_locks"),
    ("phase_lock_release", "ReleaseResourceLock", "DELETE resource_locks"),
    ("phase_node_add", "AddNodes (one node)", "INSERT dag_nodes"),
    ("phase_node_acquire", "AcquireNextNode", "UPDATE dag_nodes"),
    ("phase_node_heartbeat", "HeartbeatNode", "UPDATE dag_nodes (same second: no change)"),
    ("phase_node_complete", "CompleteNode", "UPDATE dag_nodes, INSERT event_journal"),
]


def create_schema(agentd, work):
    """Starts agentd on a fresh database until it serves, then stops it: the schema is its own."""
    sock, db = os.path.join(work, "d.sock"), os.path.join(work, "floor.db")
    env = dict(os.environ, AGENTD_HOME=work)
    daemon = subprocess.Popen([agentd, "serve", "--socket", sock, "--db", db], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not os.path.exists(sock):
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("sqlite_floor: agentd did not start")
        time.sleep(0.01)
    daemon.send_signal(signal.SIGTERM)
    if daemon.wait(timeout=30) != 0:
        raise SystemExit("sqlite_floor: agentd did not stop cleanly")
    return db


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agentd", default=".build/release/agentd")
    ap.add_argument("--turns", type=int, default=64, help="batches per phase")
    ap.add_argument("--per-turn", type=int, default=32, help="requests per batch (one commit each)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    for tool in ("cc", "valgrind", "callgrind_annotate"):
        if shutil.which(tool) is None:
            raise SystemExit(f"sqlite_floor: {tool} is needed")
    here = os.path.dirname(os.path.abspath(__file__))
    work = tempfile.mkdtemp(prefix="agentd-floor.")
    try:
        program = os.path.join(work, "sqlite_floor")
        subprocess.run(["cc", "-O2", "-o", program, os.path.join(here, "sqlite_floor.c"), "-lsqlite3"], check=True)
        db = create_schema(args.agentd, work)
        out = os.path.join(work, "callgrind.out")
        toggles = [f"--toggle-collect={name}" for name, _, _ in PHASES]
        subprocess.run(["valgrind", "--tool=callgrind", "--collect-atstart=no", f"--callgrind-out-file={out}"]
                       + toggles + [program, db, str(args.turns), str(args.per_turn)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, inclusive = annotate(out, True)
        requests = args.turns * args.per_turn
        print(f"SQLite alone, instructions per request ({requests} requests a phase, {args.per_turn} a commit)")
        print(f"{'phase':22s} {'floor':>8s}  rows")
        cycles = {"lock cycle": 0, "lease cycle": 0}
        for name, label, rows in PHASES:
            cost = max([ir for ir, where in inclusive if f":{name} " in where or where.endswith(f":{name}")] or [0])
            print(f"{label:22s} {cost / requests:8.0f}  {rows}")
            if name != "phase_task_register":   # the cycles: bench compare's (AddNodes adds the work)
                cycles["lock cycle" if name.startswith("phase_lock") else "lease cycle"] += cost / requests
        for label, cost in cycles.items():
            print(f"{label:22s} {cost:8.0f}")
    finally:
        if args.keep:
            print("kept", work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
