#!/usr/bin/env python3
"""TLS cost per request next to the Unix socket's: the same lock cycle (AcquireResourceLock,
ReleaseResourceLock) over both transports of one daemon, with C connections pipelining P
requests each, for SECONDS each. Reports requests/s and the daemon's CPU microseconds per
request (from /proc: the server's cost, whatever the client's speed).

  swift build -c release --product agentd
  python3 bench/tls_cost.py [--connections 8] [--pipeline 16] [--seconds 5]
"""
import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "tls"))
from agentd_tls import Daemon, new_directory  # noqa: E402

TOKEN = "bench-token-5c0ffee5c0ffee"


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker(make_client, index, pipeline, stop, counts):
    client = make_client()
    done = 0
    key = f"bench:{index}"
    while not stop.is_set():
        batch = []
        for i in range(pipeline):
            batch.append(json.dumps({"id": i, "method": "AcquireResourceLock",
                                     "params": {"resource_key": f"{key}:{i}", "ttl_secs": 60}}) + "\n")
        client.send_line("".join(batch).encode())
        leases = [client.read_line()["result"]["lease_id"] for _ in range(pipeline)]
        release = "".join(json.dumps({"method": "ReleaseResourceLock",
                                      "params": {"resource_key": f"{key}:{i}", "lease_id": lease}}) + "\n"
                          for i, lease in enumerate(leases))
        client.send_line(release.encode())
        for _ in range(pipeline):
            client.read_line()
        done += 2 * pipeline
    counts[index] = done
    client.close()


def measure(daemon, name, make_client, connections, pipeline, seconds):
    stop = threading.Event()
    counts = [0] * connections
    threads = [threading.Thread(target=worker, args=(make_client, i, pipeline, stop, counts))
               for i in range(connections)]
    cpu0, t0 = cpu_seconds(daemon.process.pid), time.time()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed, cpu = time.time() - t0, cpu_seconds(daemon.process.pid) - cpu0
    total = sum(counts)
    print(f"{name:5} c={connections} P={pipeline}: {total} requests in {elapsed:.1f} s = {total / elapsed:8.0f}/s, "
          f"server cpu {cpu * 1e6 / max(total, 1):.2f} us/request")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    os.environ.setdefault("AGENTD_BINARY", os.path.join(os.path.dirname(__file__), "..", ".build", "release", "agentd"))
    daemon = Daemon(new_directory(), agents={"bench": TOKEN}).wait_ready()
    try:
        for _ in range(2):
            measure(daemon, "unix", daemon.unix, args.connections, args.pipeline, args.seconds)
            measure(daemon, "tls", lambda: daemon.tls(TOKEN), args.connections, args.pipeline, args.seconds)
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
