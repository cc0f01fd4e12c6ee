"""The client over TLS: the real daemon on tls://127.0.0.1:PORT with a certificate made here
by `openssl req -x509` and a token per agent. Calls, locks with renewal, leases through the
worker loop, the asyncio client, refused tokens, untrusted certificates and the environment."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

from agentd_client import AgentdConnectionError, AsyncClient, Client, Unauthenticated

from conftest import AGENTD_BIN, wait_until

ALICE = "alice-token-5d0c8e1f9a2b4c67"
BOB = "bob-token-83f1a9c04e7d2b56"


def make_certificate(directory: str, name: str = "") -> Tuple[str, str]:
    """A self-signed certificate for localhost and 127.0.0.1 and its key (mode 0600)."""
    cert = os.path.join(directory, f"{name}cert.pem")
    key = os.path.join(directory, f"{name}key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.chmod(key, 0o600)
    return cert, key


class TLSDaemon:
    """agentd serve with its Unix socket and `--listen tls://127.0.0.1:0` (the port it got is
    read from its log)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.cert, self.key = make_certificate(directory)
        self.tokens = os.path.join(directory, "tokens")
        self.write_tokens({"alice": ALICE, "bob": BOB})
        self.socket = os.path.join(directory, "agentd.sock")
        self.log_path = os.path.join(directory, "agentd.log")
        env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTD_")}
        env["AGENTD_HOME"] = directory
        args = [str(AGENTD_BIN), "serve", "--socket", self.socket, "--db", os.path.join(directory, "state.db"),
                "--listen", "tls://127.0.0.1:0", "--tls-cert", self.cert, "--tls-key", self.key,
                "--tokens", self.tokens]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        self.port = self._wait_port()

    def write_tokens(self, agents: dict) -> None:
        partial = self.tokens + ".new"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.writelines(f"{name} {token}\n" for name, token in agents.items())
        os.rename(partial, self.tokens)

    def _wait_port(self) -> int:
        deadline = time.monotonic() + 20
        port: Optional[int] = None
        while time.monotonic() < deadline:
            text = self.log()
            for line in text.splitlines():
                if "listening on tls://127.0.0.1:" in line:
                    port = int(line.split("tls://127.0.0.1:")[1].split()[0])
            if port is not None and " serving " in text:
                return port
            if self.process.poll() is not None:
                raise RuntimeError(f"agentd exited at start: {text}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"agentd did not start: {self.log()}")

    @property
    def address(self) -> str:
        return f"tls://127.0.0.1:{self.port}"

    def client(self, token: str = ALICE, **kwargs) -> Client:  # type: ignore[no-untyped-def]
        return Client(self.address, token=token, cafile=self.cert, **kwargs)

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as file:
                return file.read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def tls_daemon() -> Iterator[TLSDaemon]:
    with tempfile.TemporaryDirectory(prefix="agentd-pytls-") as directory:
        daemon = TLSDaemon(directory)
        try:
            yield daemon
        finally:
            daemon.stop()


@pytest.fixture
def alice(tls_daemon: TLSDaemon) -> Iterator[Client]:
    c = tls_daemon.client(ALICE)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def bob(tls_daemon: TLSDaemon) -> Iterator[Client]:
    c = tls_daemon.client(BOB)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AGENTD_* settings, and a HOME without an env file."""
    for key in list(os.environ):
        if key.startswith("AGENTD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


# -- calls -------------------------------------------------------------------------


def test_a_call_authenticates_first(alice: Client) -> None:
    assert alice.tls and alice.agent is None  # connections open on first use
    assert alice.health()["status"] == "ok"
    assert alice.agent == "alice"
    assert alice.metrics() and len(alice._open) == 1  # an idle connection is used again
    assert alice.owner is None  # the daemon names leases and locks after the agent
    assert "agent='alice'" in repr(alice) and ALICE not in repr(alice)


def test_host_name_is_checked_against_the_certificate(tls_daemon: TLSDaemon) -> None:
    with Client(f"tls://localhost:{tls_daemon.port}", token=BOB, cafile=tls_daemon.cert) as c:
        assert c.connect() is c and c.agent == "bob"
        assert c.call("Health")["status"] == "ok"


def test_every_pooled_connection_authenticates(tls_daemon: TLSDaemon, alice: Client) -> None:
    task_id = alice.register_task("pool", nodes=[{}])
    started = threading.Event()
    results: List[object] = []

    def parked() -> None:
        started.set()
        # Parks on its own connection until the node below is released.
        results.append(alice.acquire_next(task_id, wait=10))

    lease = alice.acquire_next(task_id)
    assert lease is not None and lease.owner == "alice"
    thread = threading.Thread(target=parked)
    thread.start()
    started.wait()
    # Meanwhile other calls need connections of their own: each authenticates.
    assert alice.task_status(task_id)["counts"]["RUNNING"] == 1
    lease.abandon()
    thread.join(10)
    second = results[0]
    assert second is not None and second.owner == "alice"  # type: ignore[attr-defined]
    second.complete({"ok": True})  # type: ignore[attr-defined]
    assert len(alice._open) >= 2


# -- locks ---------------------------------------------------------------------------


def test_lock_cycle_with_renewal(alice: Client, bob: Client) -> None:
    with alice.lock("file:tls/a", ttl=1, wait=0) as lk:
        assert lk.owner == "alice" and lk.info and lk.info["owner"] == "alice"
        first_expiry = lk.expires_at
        assert first_expiry is not None
        # Renewed in the background (every ttl/3) past two of its TTLs.
        wait_until(lambda: time.time() >= first_expiry + 1.5, what="two TTLs to pass")
        assert lk.held and lk.lost is None and lk.expires_at > first_expiry  # type: ignore[operator]
        assert [(row["resource_key"], row["owner"]) for row in bob.locks(prefix="file:tls/")] == [
            ("file:tls/a", "alice")
        ]
        assert bob.lock("file:tls/a", ttl=5).acquire(wait=0) is False
    taken = bob.lock("file:tls/a", ttl=5)
    assert taken.acquire(wait=0) and taken.owner == "bob"
    assert taken.fencing_token > lk.fencing_token  # type: ignore[operator]
    taken.release()


def test_an_owner_given_is_sent(tls_daemon: TLSDaemon) -> None:
    with tls_daemon.client(ALICE, owner="alice/worker-1") as c:
        with c.lock("file:tls/owned", ttl=5) as lk:
            assert lk.owner == "alice/worker-1"
        with c.lock("file:tls/owned", ttl=5, owner="per-lock") as lk:
            assert lk.info and lk.info["owner"] == "per-lock"


def test_closing_the_client_frees_its_lock(tls_daemon: TLSDaemon, bob: Client) -> None:
    c = tls_daemon.client(ALICE)
    lk = c.lock("file:tls/dies", ttl=60)
    assert lk.acquire(wait=0)
    c.close()
    # release_on_disconnect: the daemon frees it as soon as the TCP connection is gone.
    with bob.lock("file:tls/dies", ttl=5, wait=5) as taken:
        assert taken.owner == "bob"


# -- leases ----------------------------------------------------------------------------


def test_lease_cycle_through_the_worker_loop(alice: Client) -> None:
    task_id = alice.register_task("over tls", nodes=[{"payload_schema": {"n": n}} for n in range(3)])
    owners: List[Optional[str]] = []

    def fn(lease) -> dict:  # type: ignore[no-untyped-def]
        owners.append(lease.owner)
        lease.commit_event({"n": lease.payload_schema["n"]})
        if lease.payload_schema["n"] == 0:
            time.sleep(1.6)  # past the 1 s lease: the background heartbeat keeps it
        return {"done": lease.payload_schema["n"]}

    assert alice.work(task_id, fn, wait=1, lease_ttl=1) == 3
    assert owners == ["alice"] * 3
    status = alice.task_status(task_id)
    assert status["task"]["status"] == "COMPLETED"
    assert sorted(node["result_payload"]["done"] for node in status["nodes"]) == [0, 1, 2]
    assert all(node["attempts"] == 1 for node in status["nodes"])
    events = list(alice.events(task_id))
    assert sum(1 for event in events if event["action_type"] == "COMMIT_EVENT") == 3


# -- asyncio ---------------------------------------------------------------------------


def test_async_call_and_lock(tls_daemon: TLSDaemon) -> None:
    async def main() -> None:
        async with AsyncClient(tls_daemon.address, token=ALICE, cafile=tls_daemon.cert) as a, AsyncClient(
            tls_daemon.address, token=BOB, cafile=tls_daemon.cert
        ) as b:
            assert a.tls and a.owner is None
            assert (await a.health())["status"] == "ok" and a.agent == "alice"
            assert await b.connect() is b and b.agent == "bob"
            async with a.lock("file:tls/async", ttl=1, wait=0) as lk:
                assert lk.owner == "alice"
                first_expiry = lk.expires_at
                await asyncio.sleep(2.2)  # renewed in the background
                assert lk.held and lk.expires_at > first_expiry  # type: ignore[operator]
                assert not await b.lock("file:tls/async", ttl=5).acquire(wait=0)
            async with b.lock("file:tls/async", ttl=5, wait=5) as taken:
                assert taken.owner == "bob"

            task_id = await a.register_task("async over tls", nodes=[{}, {}])
            assert await b.work(task_id, lambda lease: {"by": lease.owner}, wait=1) == 2
            nodes = (await a.task_status(task_id))["nodes"]
            assert [node["result_payload"] for node in nodes] == [{"by": "bob"}, {"by": "bob"}]

    asyncio.run(main())


def test_async_wrong_token_and_untrusted_certificate(tls_daemon: TLSDaemon, tmp_path: Path) -> None:
    other_cert, _ = make_certificate(str(tmp_path), "other-")

    async def main() -> None:
        wrong = AsyncClient(tls_daemon.address, token="not-a-token", cafile=tls_daemon.cert)
        with pytest.raises(Unauthenticated) as refused:
            await wrong.health()
        assert refused.value.reason == "UNAUTHENTICATED" and refused.value.method == "Authenticate"
        assert not wrong._open
        await wrong.close()
        untrusted = AsyncClient(tls_daemon.address, token=ALICE, cafile=other_cert)
        with pytest.raises(AgentdConnectionError, match="certificate verify failed") as caught:
            await untrusted.health()
        assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
        await untrusted.close()

    asyncio.run(main())


# -- refusals --------------------------------------------------------------------------


def test_wrong_token_is_unauthenticated(tls_daemon: TLSDaemon) -> None:
    c = tls_daemon.client("not-a-token")
    with pytest.raises(Unauthenticated) as caught:
        c.health()
    assert caught.value.reason == "UNAUTHENTICATED" and caught.value.method == "Authenticate"
    assert c.agent is None and not c._open and not c._idle  # its connection is gone
    with pytest.raises(Unauthenticated):
        c.lock("file:tls/never", ttl=5).acquire(wait=0)
    c.close()


def test_untrusted_certificate(tls_daemon: TLSDaemon, tmp_path: Path) -> None:
    other_cert, _ = make_certificate(str(tmp_path), "other-")
    c = Client(tls_daemon.address, token=ALICE, cafile=other_cert)
    with pytest.raises(AgentdConnectionError, match="certificate verify failed") as caught:
        c.health()
    assert caught.value.path == tls_daemon.address
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    assert other_cert in str(caught.value)
    c.close()


def test_system_store_does_not_trust_a_self_signed_certificate(tls_daemon: TLSDaemon, clean_env: Path) -> None:
    with Client(tls_daemon.address, token=ALICE) as c:
        with pytest.raises(AgentdConnectionError, match="certificate verify failed.*system's CAs"):
            c.connect()


def test_removed_token_ends_its_connections(tls_daemon: TLSDaemon) -> None:
    carol = "carol-token-0c7e2a9b41d35f86"
    tls_daemon.write_tokens({"alice": ALICE, "bob": BOB, "carol": carol})
    tls_daemon.process.send_signal(signal.SIGHUP)
    c = tls_daemon.client(carol)
    try:
        wait_until(lambda: _authenticates(c), what="the reloaded tokens")
        assert c.agent == "carol"
        tls_daemon.write_tokens({"alice": ALICE, "bob": BOB})
        tls_daemon.process.send_signal(signal.SIGHUP)
        # The pooled connection is closed by the daemon; a new one is refused.
        wait_until(lambda: not _authenticates(c), what="the token to be removed")
        with pytest.raises(Unauthenticated):
            c.health()
    finally:
        c.close()


def _authenticates(c: Client) -> bool:
    try:
        c.health()
        return True
    except (Unauthenticated, AgentdConnectionError):
        return False


# -- the environment and the constructor -----------------------------------------------


def test_environment_fallbacks(tls_daemon: TLSDaemon, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = clean_env / "token"
    token_file.write_text(f"\n  {BOB} \n")
    monkeypatch.setenv("AGENTD_CONNECT", tls_daemon.address)
    monkeypatch.setenv("AGENTD_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AGENTD_CA_FILE", tls_daemon.cert)
    with Client() as c:
        assert c.path == tls_daemon.address and c.tls
        assert c.connect().agent == "bob"
    # An explicit token and address win over the environment; the CA file still comes from it.
    with Client(tls_daemon.address, token=ALICE) as c:
        assert c.connect().agent == "alice"

    async def main() -> None:
        async with AsyncClient() as a:
            assert (await a.connect()).agent == "bob"

    asyncio.run(main())


def test_env_file_and_token_file_argument(tls_daemon: TLSDaemon, clean_env: Path) -> None:
    # The settings may come from the env file, as for the daemon and the command line.
    token_file = clean_env / "alice.token"
    token_file.write_text(ALICE + "\n")
    agentd_home = clean_env / ".agentd"
    agentd_home.mkdir()
    (agentd_home / ".env").write_text(
        f"AGENTD_CONNECT={tls_daemon.address}\nAGENTD_CA_FILE={tls_daemon.cert}\nAGENTD_TOKEN_FILE=~/alice.token\n"
    )
    with Client() as c:
        assert c.connect().agent == "alice"
    # token_file= names the file directly.
    bob_file = clean_env / "bob.token"
    bob_file.write_text(BOB)
    with Client(tls_daemon.address, token_file=str(bob_file), cafile=tls_daemon.cert) as c:
        assert c.connect().agent == "bob"


def test_unix_address_in_agentd_connect(tls_daemon: TLSDaemon, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTD_CONNECT", "unix://" + tls_daemon.socket)
    with Client() as c:
        assert c.path == tls_daemon.socket and not c.tls
        assert c.health()["status"] == "ok" and c.agent is None
        assert c.owner is not None and c.owner.startswith("python:")  # the local default, as before


def test_constructor_refusals(clean_env: Path) -> None:
    with pytest.raises(ValueError, match="needs a token"):
        Client("tls://127.0.0.1:7443")
    with pytest.raises(ValueError, match="not both"):
        Client("tls://127.0.0.1:7443", token="t", token_file="/f")
    with pytest.raises(ValueError, match="tls://HOST:PORT"):
        Client("tls://127.0.0.1", token="t")
    with pytest.raises(ValueError, match="tls://HOST:PORT"):
        AsyncClient("tls://host:99999", token="t")
    with pytest.raises(ValueError, match="tls:// addresses only"):
        Client("/a.sock", token="t")
    with pytest.raises(ValueError, match="tls:// addresses only"):
        AsyncClient("/a.sock", cafile="/ca.pem")
    empty = clean_env / "empty"
    empty.write_text("  \n")
    with pytest.raises(AgentdConnectionError, match="token file is empty"):
        Client("tls://127.0.0.1:7443", token_file=str(empty))
    with pytest.raises(AgentdConnectionError, match="cannot read the token file"):
        Client("tls://127.0.0.1:7443", token_file=str(clean_env / "absent"))
    with pytest.raises(AgentdConnectionError, match="cannot load the CA file"):
        Client("tls://127.0.0.1:7443", token="t", cafile=str(clean_env / "absent.pem"))
    c = Client("tls://[::1]:7443", token="t")
    assert c._endpoint.context is not None and c._endpoint.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert c.path == "tls://[::1]:7443" and c._endpoint.host == "::1" and c._endpoint.port == 7443


def test_nobody_listening(clean_env: Path) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # the port is free: nobody listens there
    with pytest.raises(AgentdConnectionError, match="connection refused") as caught:
        Client(f"tls://127.0.0.1:{port}", token="t").health()
    assert caught.value.path == f"tls://127.0.0.1:{port}"
