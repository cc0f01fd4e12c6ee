"""agentd over TLS, tested with a TLS stack nobody here wrote: Python's ssl module and the openssl
command line, against the real binary on 127.0.0.1 with a certificate made by `openssl req -x509`.

Runs under pytest or `python3 -m unittest discover -s Tests/tls` (standard library only).
The binary is AGENTD_BINARY, else .build/debug/agentd, else .build/release/agentd."""
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import unittest
import warnings

from agentd_tls import Daemon, LineClient, agentd_binary, new_directory, write_tokens

ALICE = "alice-token-7f3e9a1c55d04b8e"
BOB = "bob-token-0b1d2c3e4f5a6978"
AGENTS = {"alice": ALICE, "bob": BOB}


class TLSTestCase(unittest.TestCase):
    env = {}

    def setUp(self):
        warnings.simplefilter("ignore", ResourceWarning)
        self.directory = new_directory()
        self.daemons = []

    def tearDown(self):
        for daemon in self.daemons:
            daemon.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def start(self, agents=AGENTS, env=None, args=None, directory=None, **kwargs):
        daemon = Daemon(directory or self.directory, agents=agents, env={**self.env, **(env or {})},
                        args=args, **kwargs)
        self.daemons.append(daemon)
        return daemon.wait_ready()


class CycleTests(TLSTestCase):
    def test_lease_and_lock_cycle_over_tls(self):
        daemon = self.start()
        client = daemon.tls()
        self.assertEqual(client.sock.version(), "TLSv1.3")
        self.assertEqual(client.authenticate(ALICE), {"agent": "alice"})

        task = client.call("RegisterTask", {"goal": "over tls", "initial_nodes": [{}, {}]})["task_id"]
        lease = client.call("AcquireNextNode", {"task_id": task})
        # No lease_owner given: the authenticated agent is the owner.
        self.assertEqual(lease["lease_owner"], "alice")
        node, lease_id = lease["node_id"], lease["lease_id"]
        client.call("CommitEvent", {"task_id": task, "node_id": node, "lease_id": lease_id, "payload": {"step": 1}})
        self.assertEqual(client.call("HeartbeatNode", {"task_id": task, "node_id": node, "lease_id": lease_id}),
                         {"ok": True})
        client.call("CompleteNode", {"task_id": task, "node_id": node, "lease_id": lease_id,
                                     "result_payload": {"done": True}})
        explicit = client.call("AcquireNextNode", {"task_id": task, "lease_owner": "someone-else"})
        self.assertEqual(explicit["lease_owner"], "someone-else")
        status = client.call("TaskStatus", {"task_id": task})
        self.assertEqual(status["counts"], {"COMPLETED": 1, "RUNNING": 1})

        lock = client.call("AcquireResourceLock", {"resource_key": "file:a", "ttl_secs": 30})
        self.assertEqual(lock["owner"], "alice")
        other = daemon.tls(BOB)
        self.assertIsNone(other.call("AcquireResourceLock", {"resource_key": "file:a"}))
        client.call("HeartbeatResourceLock", {"resource_key": "file:a", "lease_id": lock["lease_id"], "ttl_secs": 30})
        listed = other.call("ListResourceLocks")["locks"]
        self.assertEqual([(l["resource_key"], l["owner"]) for l in listed], [("file:a", "alice")])
        client.call("ReleaseResourceLock", {"resource_key": "file:a", "lease_id": lock["lease_id"]})
        self.assertEqual(other.call("AcquireResourceLock", {"resource_key": "file:a"})["owner"], "bob")

        # The same state on the Unix socket, which needs no token; its default owner is unchanged.
        unix = daemon.unix()
        self.assertEqual(unix.call("TaskStatus", {"task_id": task})["counts"], {"COMPLETED": 1, "RUNNING": 1})
        self.assertEqual(unix.call("AcquireResourceLock", {"resource_key": "file:b"})["owner"], "anonymous")
        for c in (client, other, unix):
            c.close()

    def test_tls_1_2_through_openssl_s_client(self):
        daemon = self.start()
        request = ('{"id":1,"method":"Authenticate","params":{"token":"%s"}}\n'
                   '{"id":2,"method":"Health"}\n' % BOB).encode()
        client = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{daemon.port}", "-tls1_2", "-CAfile", daemon.cert,
             "-verify_return_error", "-servername", "localhost", "-quiet"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        watchdog = threading.Timer(20, client.kill)
        watchdog.start()
        try:
            client.stdin.write(request)
            client.stdin.flush()
            first = client.stdout.readline().decode()
            second = client.stdout.readline().decode()
        finally:
            watchdog.cancel()
            client.kill()
            client.wait()
        self.assertEqual(first.strip(), '{"id":1,"result":{"agent":"bob"}}')
        self.assertIn('"status":"ok"', second)
        old = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{daemon.port}", "-tls1_1", "-CAfile", daemon.cert,
             "-quiet"], input=b"", capture_output=True, timeout=20)
        self.assertNotEqual(old.returncode, 0, "TLS 1.1 must be refused")


class AuthenticationTests(TLSTestCase):
    def test_requests_before_authenticate_are_refused(self):
        daemon = self.start()
        client = daemon.tls()
        for method, params in [("Health", None), ("RegisterTask", {"goal": "sneaky"}),
                               ("AcquireResourceLock", {"resource_key": "k"}), ("DescribeInterface", None)]:
            answer = client.request(method, params)
            self.assertEqual(answer["error"]["code"], -32000, answer)
            self.assertEqual(answer["error"]["data"]["reason"], "UNAUTHENTICATED")
            self.assertIn("id", answer)
        client.send_line(b"this is not json\n")
        self.assertEqual(client.read_line()["error"]["data"]["reason"], "UNAUTHENTICATED")
        # Nothing happened: no task, no lock.
        unix = daemon.unix()
        self.assertEqual(unix.call("ListTasks")["tasks"], [])
        self.assertEqual(unix.call("ListResourceLocks")["locks"], [])
        # The connection is still usable once it authenticates.
        self.assertEqual(client.authenticate(ALICE), {"agent": "alice"})
        self.assertEqual(client.call("Health")["status"], "ok")

    def test_wrong_token_is_answered_and_closed(self):
        daemon = self.start()
        client = daemon.tls()
        # A request pipelined behind the wrong token is not handled.
        client.send_line('{"id":7,"method":"Authenticate","params":{"token":"%s"}}\n'
                         '{"id":8,"method":"RegisterTask","params":{"goal":"after"}}\n' % (ALICE + "x"))
        answer = client.read_line()
        self.assertEqual(answer["id"], 7)
        self.assertEqual(answer["error"]["code"], -32000)
        self.assertEqual(answer["error"]["data"]["reason"], "UNAUTHENTICATED")
        self.assertTrue(client.at_eof())
        self.assertEqual(daemon.unix().call("ListTasks")["tasks"], [])

    def test_plaintext_on_the_tls_port_closes_only_that_connection(self):
        daemon = self.start()
        good = daemon.tls(ALICE)
        raw = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        raw.sendall(b'{"id":1,"method":"Health"}\n')
        self.assertTrue(LineClient(raw).at_eof())
        raw.close()
        self.assertEqual(good.call("Health")["status"], "ok")
        self.assertEqual(daemon.tls(BOB).call("Health")["status"], "ok")
        self.assertIsNone(daemon.process.poll())

    def test_sighup_removing_a_token_ends_that_agents_connection(self):
        daemon = self.start()
        alice = daemon.tls(ALICE)
        bob = daemon.tls(BOB)
        lock = bob.call("AcquireResourceLock", {"resource_key": "bob:k", "release_on_disconnect": True})
        self.assertEqual(lock["owner"], "bob")
        write_tokens(daemon.tokens, {"alice": ALICE, "carol": "carol-token-44e1d0b5c3a2"})
        daemon.sighup()
        self.assertTrue(bob.at_eof(timeout=5))
        self.assertEqual(alice.call("Health")["status"], "ok")          # not dropped
        self.assertEqual(alice.call("ListResourceLocks")["locks"], [])  # bob's lock went with him
        carol = daemon.tls("carol-token-44e1d0b5c3a2")
        self.assertEqual(carol.call("Health")["status"], "ok")
        refused = daemon.tls()
        self.assertEqual(refused.request("Authenticate", {"token": BOB})["error"]["data"]["reason"], "UNAUTHENTICATED")
        self.assertTrue(refused.at_eof())
        # A tokens file that became unsafe is not loaded: the old tokens stay.
        os.chmod(daemon.tokens, 0o644)
        daemon.sighup()
        time.sleep(0.3)
        self.assertEqual(alice.call("Health")["status"], "ok")
        self.assertIn("tokens not reloaded", daemon.log_text())


class StartTests(TLSTestCase):
    def test_tokens_file_readable_by_others_is_refused_at_start(self):
        write_tokens(os.path.join(self.directory, "tokens"), AGENTS, mode=0o644)
        daemon = Daemon(self.directory, agents=None)
        self.daemons.append(daemon)
        self.assertNotEqual(daemon.wait_exit(), 0)
        self.assertIn("chmod 600", daemon.log_text())
        self.assertFalse(os.path.exists(daemon.socket_path), "a failed start leaves no socket")

    def test_tcp_without_tls_is_refused_at_start(self):
        binary = agentd_binary()
        env = {"HOME": self.directory, "AGENTD_HOME": os.path.join(self.directory, "home"), "PATH": "/usr/bin:/bin"}
        for args, expected in [(["--listen", "tcp://127.0.0.1:0"], "no plaintext TCP listener"),
                               (["--listen", "127.0.0.1:7000"], "only tls://HOST:PORT"),
                               (["--listen", "tls://127.0.0.1:0", "--tokens", "t"], "needs --tls-cert, --tls-key")]:
            run = subprocess.run([binary, "serve"] + args, env=env, capture_output=True, timeout=20)
            self.assertEqual(run.returncode, 64, run)  # EX_USAGE, as every agentd command
            self.assertIn(expected, run.stderr.decode())
        env["AGENTD_LISTEN"] = "tls://127.0.0.1:0"
        run = subprocess.run([binary, "serve"], env=env, capture_output=True, timeout=20)
        self.assertEqual(run.returncode, 64)
        self.assertIn("needs --tls-cert", run.stderr.decode())


class LimitTests(TLSTestCase):
    env = {"AGENTD_TEST_AUTH_TIMEOUT_MS": "700"}

    def test_silent_connections_are_closed_after_the_timeout(self):
        daemon = self.start()
        started = time.time()
        silent = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        handshaken = daemon.tls()                     # handshake done, never authenticates
        authenticated = daemon.tls(ALICE)
        self.assertTrue(LineClient(silent).at_eof(timeout=8))
        self.assertTrue(handshaken.at_eof(timeout=8))
        self.assertLess(time.time() - started, 6)
        time.sleep(0.5)
        self.assertEqual(authenticated.call("Health")["status"], "ok")

    def test_a_line_of_1_MiB_is_answered_32001_and_closed(self):
        daemon = self.start()
        client = daemon.tls(ALICE)
        client.send_line(b'{"id":1,"method":"Health","pad":"' + b"x" * (1 << 20) + b'"}\n')
        answer = client.read_line()
        self.assertEqual(answer["error"]["code"], -32001)
        self.assertEqual(answer["error"]["message"], "request exceeds 1048576 bytes")
        self.assertTrue(client.at_eof())
        # Just under the limit is fine.
        ok = daemon.tls(ALICE)
        line = b'{"id":2,"method":"Health","pad":"'
        line += b"y" * ((1 << 20) - len(line) - 3) + b'"}\n'
        self.assertEqual(len(line), 1 << 20)
        ok.send_line(line)
        self.assertEqual(ok.read_line()["result"]["status"], "ok")

    def test_a_client_that_never_reads_stays_bounded(self):
        daemon = self.start()
        before = daemon.rss_kib()
        hog = daemon.tls(ALICE)
        hog.sock.settimeout(0.5)
        request = b'{"method":"DescribeInterface"}\n' * 64
        sent = 0
        deadline = time.time() + 6
        try:
            while time.time() < deadline:
                hog.sock.sendall(request)
                sent += len(request)
        except (socket.timeout, ssl.SSLWantWriteError, TimeoutError):
            pass
        self.assertGreater(sent, 1 << 20)
        time.sleep(0.3)
        grown_mib = (daemon.rss_kib() - before) / 1024
        # The unread answers are bounded by the output high-water mark (4 MiB) and what is
        # encrypted and in flight; without back-pressure this would be hundreds of MiB.
        self.assertLess(grown_mib, 48, f"RSS grew {grown_mib:.1f} MiB after {sent >> 20} MiB of requests")
        other = daemon.tls(BOB)
        self.assertEqual(other.call("Health")["status"], "ok")

    def test_connection_cap_per_listener(self):
        daemon = self.start(args=["--max-connections", "2"])
        first = daemon.tls(ALICE)
        second = daemon.tls(BOB)
        third = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        self.assertTrue(LineClient(third).at_eof(timeout=5))
        first.close()
        time.sleep(0.2)
        again = daemon.tls(ALICE)
        self.assertEqual(again.call("Health")["status"], "ok")
        self.assertEqual(second.call("Health")["status"], "ok")


class BackupTests(TLSTestCase):
    def test_backup_during_load_keeps_every_acknowledged_change(self):
        daemon = self.start()
        setup = daemon.unix()
        # Some bulk first, so the copy takes many steps.
        for _ in range(40):
            setup.call("RegisterTask", {"goal": "bulk", "context": {"pad": "z" * 2000},
                                        "initial_nodes": [{"payload_schema": {"pad": "p" * 200}} for _ in range(100)]})
        acknowledged = []          # (time acknowledged, task id), from several writers
        stop = threading.Event()
        lock = threading.Lock()

        def writer(index):
            client = daemon.tls(ALICE) if index % 2 else daemon.unix()
            while not stop.is_set():
                task = client.call("RegisterTask", {"goal": f"w{index}", "initial_nodes": [{}]})["task_id"]
                client.call("AcquireResourceLock", {"resource_key": f"w{index}:{task}", "ttl_secs": 600})
                with lock:
                    acknowledged.append((time.monotonic(), task))
            client.close()

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        destination = os.path.join(self.directory, "copy.db")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTD_")}
        env["AGENTD_HOME"] = daemon.home
        backup_started = time.monotonic()
        run = subprocess.run([agentd_binary(), "backup", destination], env=env, capture_output=True, timeout=60)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(run.returncode, 0, run.stderr.decode())
        self.assertIn("backed up", run.stdout.decode())
        self.assertEqual(os.stat(destination).st_mode & 0o777, 0o600)
        before = [task for at, task in acknowledged if at < backup_started]
        after = [task for at, task in acknowledged if at >= backup_started]
        self.assertGreater(len(before), 10)
        self.assertGreater(len(after), 0, "the load went on during the backup")

        # An existing PATH is refused without --force, replaced with it.
        again = subprocess.run([agentd_binary(), "backup", destination], env=env, capture_output=True, timeout=60)
        self.assertEqual(again.returncode, 1)
        self.assertIn("--force", again.stderr.decode())

        restored_dir = os.path.join(self.directory, "restored")
        os.makedirs(restored_dir)
        restored = self.start(directory=restored_dir, listen=False, database=destination)
        client = restored.unix()
        listed = set()
        after_id = None
        while True:
            params = {"limit": 1000}
            if after_id:
                params["after"] = after_id
            page = client.call("ListTasks", params)
            listed.update(t["id"] if "id" in t else t["task_id"] for t in page["tasks"])
            after_id = page["next_after"]
            if not after_id:
                break
        missing = [task for task in before if task not in listed]
        self.assertEqual(missing, [], f"{len(missing)} of {len(before)} acknowledged tasks missing")
        locks = {l["resource_key"] for l in client.call("ListResourceLocks")["locks"]}
        for task in before:
            self.assertTrue(any(key.endswith(task) for key in locks))


if __name__ == "__main__":
    unittest.main()
