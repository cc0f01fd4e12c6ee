"""The synchronous client: :class:`Client`, :class:`Lock` and :class:`Lease`.

Connections. A ``Client`` keeps a small pool of connections (to the Unix socket, or over TLS
to ``tls://HOST:PORT``, each authenticated with the agent's token first) and sends each
request on a connection it has to itself until the answer is back: requests are serialised
per connection, never pipelined. One thread uses one connection; threads calling at the same
time get one each, so a call the daemon parks (an acquire with ``wait``, a long-polling
``events``) never holds up another thread's heartbeat. Connections are opened when first
needed, and one the daemon has closed (a restart) is replaced by a fresh one.

Everything the client takes (node leases, locks) is taken with ``release_on_disconnect``
on a connection that the lease or lock then keeps for itself until it is released, so a
process that dies frees what it held at once, and a broken or timed-out connection of some
other call never takes a held lock with it.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from . import _common, _endpoint
from ._common import JSON, NodeDefinition, _UNSET
from ._endpoint import Endpoint
from .errors import (
    AgentdConnectionError,
    AgentdError,
    LockLost,
    LockNotAcquired,
    TaskClosed,
)

__all__ = ["Client", "Lock", "Lease"]

log = logging.getLogger("agentd_client")


def _describe(error: BaseException) -> str:
    if isinstance(error, FileNotFoundError):
        return "no socket at this path (is the daemon running? start it with `agentd serve`)"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (a stale socket file: is the daemon running?)"
    if isinstance(error, PermissionError):
        return "permission denied"
    return f"{type(error).__name__}: {error}"


def _drop_pinned(client: Any, connection: Any) -> None:
    """For a lease or lock object collected while still holding: its connection closes, so
    the daemon frees the node or lock at once (release_on_disconnect)."""
    connection.close()
    try:
        client._checkin(connection)
    except Exception:
        pass


class _Connection:
    """One connection carrying one request at a time: to a Unix socket, or a TLS connection
    that has authenticated (``agent`` is the name the daemon answered)."""

    def __init__(self, endpoint: Endpoint, timeout: Optional[float]) -> None:
        self.path = endpoint.address
        self.closed = False
        self.agent: Optional[str] = None
        self._buffer = bytearray()
        self._next_id = 1
        self._tls = endpoint.tls
        self._sock = self._open_tls(endpoint, timeout) if endpoint.tls else self._open_unix(endpoint.address, timeout)
        if endpoint.tls:
            try:
                answer = self.request("Authenticate", {"token": endpoint.token}, timeout)
            except BaseException:
                self.close()  # a refused token: the daemon closes the connection too
                raise
            agent = answer.get("agent") if isinstance(answer, dict) else None
            self.agent = agent if isinstance(agent, str) else None

    @staticmethod
    def _open_unix(path: str, timeout: Optional[float]) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
        except socket.timeout:
            sock.close()
            raise AgentdConnectionError(path, f"no connection within {timeout} s") from None
        except OSError as error:
            sock.close()
            raise AgentdConnectionError(path, _describe(error)) from None
        return sock

    @staticmethod
    def _open_tls(endpoint: Endpoint, timeout: Optional[float]) -> socket.socket:
        assert endpoint.host is not None and endpoint.port is not None and endpoint.context is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            raw = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
        except socket.timeout:
            raise AgentdConnectionError(endpoint.address, f"no connection within {timeout} s") from None
        except OSError as error:
            raise _endpoint.handshake_error(endpoint, error) from None
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if deadline is not None:
                raw.settimeout(max(deadline - time.monotonic(), 0.001))
            return endpoint.context.wrap_socket(raw, server_hostname=endpoint.host)
        except socket.timeout:
            raw.close()
            raise AgentdConnectionError(endpoint.address, f"no TLS handshake within {timeout} s") from None
        except OSError as error:
            raw.close()
            raise _endpoint.handshake_error(endpoint, error) from error

    def stale(self) -> bool:
        """True when the daemon closed this idle connection (or sent something unasked)."""
        if self.closed:
            return True
        if self._tls:
            # No peeking through TLS: a non-blocking read either finds nothing (open and
            # quiet; records that are not data, such as session tickets, are consumed) or
            # finds the end or bytes nobody asked for.
            try:
                self._sock.settimeout(0)
                self._sock.recv(1)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return False
            except OSError:
                return True
            return True
        try:
            self._sock.settimeout(0)  # with a timeout set, recv would first wait for data
            self._sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False  # open, and quiet as it should be
        except OSError:
            return True
        return True  # end of file, or bytes nobody asked for

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._sock.close()
            except OSError:
                pass

    def request(self, method: str, params: Optional[Mapping[str, Any]], timeout: Optional[float]) -> Any:
        if self.closed:
            raise AgentdConnectionError(self.path, "connection closed")
        request_id = self._next_id
        self._next_id += 1
        line = _common.encode_request(request_id, method, params)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._sock.settimeout(timeout)
            self._sock.sendall(line)
            raw = self._read_line(deadline)
        except socket.timeout:
            self.close()
            raise AgentdConnectionError(self.path, f"no answer to {method} within {timeout} s") from None
        except OSError as error:
            self.close()
            raise AgentdConnectionError(self.path, f"connection lost during {method}: {_describe(error)}") from None
        except BaseException:
            # Interrupted mid-request: the answer would arrive later and be read as the
            # answer of the next request. The connection cannot be used again.
            self.close()
            raise
        return _common.result_of(self.path, raw, request_id, method, self.close)

    def _read_line(self, deadline: Optional[float]) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout()
                self._sock.settimeout(remaining)
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise ConnectionResetError("the daemon closed the connection")
            self._buffer += chunk


class _Renewer:
    """A background thread that calls ``renew`` every ``interval`` seconds until stopped.

    ``renew`` raising an :class:`AgentdError` (a refusal by the daemon) ends the renewals and
    reports the error to ``on_refused``. Connection errors are retried, more often, until the
    deadline ``expires_at()`` has passed; then ``on_refused`` gets the connection error.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        renew: Callable[[], None],
        expires_at: Callable[[], float],
        on_refused: Callable[[BaseException], None],
    ) -> None:
        self.interval = interval
        self._renew = renew
        self._expires_at = expires_at
        self._on_refused = on_refused
        self._stop = threading.Event()
        self.paused = threading.Event()  # a test hook: while set, renewals are skipped
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.wait(delay):
            delay = self.interval
            if self.paused.is_set():
                continue
            try:
                self._renew()
            except AgentdError as error:
                if not self._stop.is_set():
                    self._on_refused(error)
                return
            except AgentdConnectionError as error:
                if time.time() >= self._expires_at():
                    if not self._stop.is_set():
                        self._on_refused(error)
                    return
                delay = min(self.interval, 0.5)


class Client:
    """A client of the agentd daemon; safe to share between threads.

    ``path`` is the daemon's address: a Unix socket path, or ``tls://HOST:PORT`` for its
    network listener. By default it is ``AGENTD_CONNECT`` when that is set, else the socket
    found as the daemon finds it (``AGENTD_SOCKET_PATH``, else ``$AGENTD_HOME/agentd.sock``,
    else ``~/.agentd/agentd.sock``, reading the ``.env`` file too).

    Over TLS (1.2 or later) the daemon's certificate is checked against ``cafile`` (else
    ``AGENTD_CA_FILE``, else the system's CAs) and the host, and every new connection first
    sends ``Authenticate`` with ``token`` (else the content of ``token_file``, else of the file
    named by ``AGENTD_TOKEN_FILE``). ``agent`` is the name the daemon answered (``None``
    until the first connection, and on a Unix socket). A refused token raises
    :class:`~agentd_client.Unauthenticated`, an untrusted certificate
    :class:`~agentd_client.AgentdConnectionError` ("certificate verify failed").

    ``owner`` names this client in leases and locks. Its default is ``python:HOST:PID`` on a
    Unix socket; over TLS it is ``None``, so the daemon names them after the agent.
    ``timeout`` bounds the wait for an answer in seconds, on top of any time the request asked
    the daemon to wait (``None``: no bound).
    """

    def __init__(
        self,
        path: Optional[str] = None,
        *,
        owner: Optional[str] = None,
        timeout: Optional[float] = 30.0,
        token: Optional[str] = None,
        cafile: Optional[str] = None,
        token_file: Optional[str] = None,
    ) -> None:
        self._endpoint = _endpoint.resolve(path, token, token_file, cafile)
        self.path: str = self._endpoint.address
        self.tls: bool = self._endpoint.tls
        self.agent: Optional[str] = None
        if owner is not None:
            self.owner: Optional[str] = owner
        else:
            self.owner = None if self.tls else _common.default_owner()
        self.timeout = timeout
        self._mutex = threading.Lock()
        self._idle: List[_Connection] = []
        self._open: Set[_Connection] = set()
        self._holders: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._closed = False

    # -- connections ---------------------------------------------------------------

    def _checkout(self) -> _Connection:
        with self._mutex:
            if self._closed:
                raise AgentdConnectionError(self.path, "the client is closed")
            while self._idle:
                connection = self._idle.pop()
                if not connection.stale():
                    return connection
                connection.close()
                self._open.discard(connection)
        connection = _Connection(self._endpoint, self.timeout)
        with self._mutex:
            if self._closed:
                connection.close()
                raise AgentdConnectionError(self.path, "the client is closed")
            self._open.add(connection)
            if connection.agent is not None:
                self.agent = connection.agent
        return connection

    def _checkin(self, connection: _Connection) -> None:
        with self._mutex:
            if connection.closed or self._closed:
                connection.close()
                self._open.discard(connection)
            else:
                self._idle.append(connection)

    def _timeout(self, parked: float) -> Optional[float]:
        return None if self.timeout is None else self.timeout + parked

    def _request(self, method: str, params: Optional[Mapping[str, Any]] = None, parked: float = 0.0) -> Any:
        connection = self._checkout()
        try:
            return connection.request(method, params, self._timeout(parked))
        finally:
            self._checkin(connection)

    def _request_pinned(
        self, method: str, params: Mapping[str, Any], parked: float
    ) -> Tuple[Any, Optional[_Connection]]:
        """A request whose success result keeps its connection: the caller then owns it."""
        connection = self._checkout()
        try:
            result = connection.request(method, params, self._timeout(parked))
        except BaseException:
            self._checkin(connection)
            raise
        if result is None:
            self._checkin(connection)
            return None, None
        return result, connection

    def connect(self) -> "Client":
        """Opens a connection now instead of at the first call (over TLS: the handshake and
        ``Authenticate``, which sets ``agent``), so that an unreachable daemon, an untrusted
        certificate or a refused token shows here. Returns the client."""
        self._checkin(self._checkout())
        return self

    def close(self) -> None:
        """Closes every connection: the daemon then releases the locks and expires the
        leases this client still holds. Their renewals stop."""
        with self._mutex:
            holders = list(self._holders)
            self._closed = True
            connections = list(self._open)
            self._open.clear()
            self._idle.clear()
        for holder in holders:
            holder._client_closed()
        for connection in connections:
            connection.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        agent = f", agent={self.agent!r}" if self.tls else ""
        return f"Client({self.path!r}, owner={self.owner!r}{agent})"

    # -- any method ----------------------------------------------------------------

    def call(self, method: str, params: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> Any:
        """Sends any method with raw params (a dict, keywords, or both) and returns its result.

        A ``wait_ms`` in the params extends the answer timeout by that long.
        """
        merged = _common.merge_params(params, kwargs)
        return self._request(method, merged, _common.parked_seconds(merged))

    def health(self) -> Dict[str, Any]:
        return self._request("Health")  # type: ignore[no-any-return]

    def metrics(self) -> Dict[str, Any]:
        return self._request("Metrics")  # type: ignore[no-any-return]

    def describe_interface(self) -> Dict[str, Any]:
        return self._request("DescribeInterface")  # type: ignore[no-any-return]

    # -- tasks ---------------------------------------------------------------------

    def register_task(
        self, goal: str, nodes: Optional[Sequence[NodeDefinition]] = None, context: JSON = None
    ) -> str:
        """Registers a task and returns its id. ``nodes`` are node definitions as the
        protocol has them (``id``, ``dependencies``, ``payload_schema``, ``name``,
        ``max_attempts``), passed on as given."""
        params: Dict[str, Any] = {"goal": goal, "initial_nodes": list(nodes or [])}
        if context is not None:
            params["context"] = context
        return str(self._request("RegisterTask", params)["task_id"])

    def add_nodes(self, task_id: str, nodes: Sequence[NodeDefinition]) -> List[str]:
        """Appends nodes to a live task; returns their ids in the order given."""
        return _common.node_ids(self._request("AddNodes", {"task_id": task_id, "nodes": list(nodes)}))

    def task_status(self, task_id: str) -> Dict[str, Any]:
        """``{"task": {..., "status"}, "counts": {...}, "nodes": [...]}``."""
        return self._request("TaskStatus", {"task_id": task_id})  # type: ignore[no-any-return]

    def retry_node(self, task_id: str, node_id: str) -> None:
        self._request("RetryNode", {"task_id": task_id, "node_id": node_id})

    def cancel_task(self, task_id: str) -> None:
        self._request("CancelTask", {"task_id": task_id})

    def delete_task(self, task_id: str) -> None:
        self._request("DeleteTask", {"task_id": task_id})

    def list_tasks(
        self, status: Optional[str] = None, limit: Optional[int] = None, after: Optional[str] = None
    ) -> Dict[str, Any]:
        """One page: ``{"tasks": [...], "next_after": id or None}``, newest first."""
        return self._request("ListTasks", _common.drop_none(status=status, limit=limit, after=after))  # type: ignore[no-any-return]

    # -- leases --------------------------------------------------------------------

    def acquire_next(
        self,
        task_id: str,
        owner: Optional[str] = None,
        wait: Optional[float] = 0,
        lease_ttl: Optional[float] = None,
    ) -> Optional["Lease"]:
        """Leases the next runnable node of the task, or returns ``None``.

        ``wait`` is how long the daemon may park the request while nothing is runnable
        (seconds; 0 answers at once, ``None`` waits as long as the daemon allows).
        ``lease_ttl`` sets the lease length (default: the daemon's node timeout).
        """
        params, parked = _common.acquire_next_params(task_id, owner or self.owner, wait, lease_ttl)
        result, connection = self._request_pinned("AcquireNextNode", params, parked)
        if result is None or connection is None:
            return None
        lease = Lease(self, result, connection, None if lease_ttl is None else _common.ttl_secs(lease_ttl))
        with self._mutex:
            self._holders.add(lease)
        return lease

    def heartbeat_node(self, task_id: str, node_id: str, lease_id: str, lease_ttl: Optional[float] = None) -> None:
        params: Dict[str, Any] = {"task_id": task_id, "node_id": node_id, "lease_id": lease_id}
        if lease_ttl is not None:
            params["lease_ttl_secs"] = _common.ttl_secs(lease_ttl)
        self._request("HeartbeatNode", params)

    def commit_event(
        self, task_id: str, node_id: str, lease_id: Optional[str], payload: JSON, action_type: str = "COMMIT_EVENT"
    ) -> str:
        params = _common.drop_none(task_id=task_id, node_id=node_id, lease_id=lease_id, action_type=action_type)
        params["payload"] = payload
        return str(self._request("CommitEvent", params)["event_id"])

    def complete_node(self, task_id: str, node_id: str, lease_id: str, result: JSON = None) -> str:
        params = {"task_id": task_id, "node_id": node_id, "lease_id": lease_id, "result_payload": result}
        return str(self._request("CompleteNode", params)["event_id"])

    def fail_node(self, task_id: str, node_id: str, lease_id: str, error: JSON = None) -> str:
        params = {"task_id": task_id, "node_id": node_id, "lease_id": lease_id, "error_payload": error}
        return str(self._request("FailNode", params)["event_id"])

    # -- the journal ---------------------------------------------------------------

    def read_events(
        self,
        task_id: str,
        after: int = 0,
        node_id: Optional[str] = None,
        limit: Optional[int] = None,
        wait: Optional[float] = 0,
    ) -> Dict[str, Any]:
        """One ReadEvents page: ``{"events": [...], "next_seq": n}``."""
        params, parked = _common.read_events_params(task_id, after, node_id, limit, wait)
        return self._request("ReadEvents", params, parked)  # type: ignore[no-any-return]

    def events(
        self,
        task_id: str,
        after: int = 0,
        *,
        node_id: Optional[str] = None,
        follow: bool = False,
        limit: int = 100,
        poll: float = 30.0,
    ) -> Iterator[Dict[str, Any]]:
        """The task's events after seq ``after``, oldest first, each with its ``seq``.

        Without ``follow`` it ends at the last event; with ``follow`` it long-polls for new
        events (``poll`` seconds per request) until the caller stops iterating.
        """
        seq = after
        while True:
            page = self.read_events(task_id, seq, node_id, limit, poll if follow else 0)
            events = page.get("events") or []
            for event in events:
                seq = max(seq, int(event.get("seq", seq)))
                yield event
            seq = max(seq, int(page.get("next_seq", seq)))
            if not follow and len(events) < limit:
                return

    # -- locks ---------------------------------------------------------------------

    def lock(
        self,
        key: str,
        ttl: float = 30,
        wait: Optional[float] = None,
        owner: Optional[str] = None,
        *,
        provider: Optional[str] = None,
        metadata: JSON = None,
        task_id: Optional[str] = None,
        node_id: Optional[str] = None,
        renew: bool = True,
        on_lost: Optional[Callable[["Lock"], Any]] = None,
    ) -> "Lock":
        """A :class:`Lock` on ``key`` (not yet acquired: use ``with`` or ``acquire()``)."""
        return Lock(
            self, key, ttl=ttl, wait=wait, owner=owner, provider=provider, metadata=metadata,
            task_id=task_id, node_id=node_id, renew=renew, on_lost=on_lost,
        )

    def locks(self, prefix: Optional[str] = None) -> List[Dict[str, Any]]:
        """The active locks (those whose key starts with ``prefix``), sorted by key."""
        params = None if prefix is None else {"prefix": prefix}
        return list(self._request("ListResourceLocks", params)["locks"])

    # -- the worker loop -------------------------------------------------------------

    def work(
        self,
        task_id: str,
        fn: Callable[["Lease"], JSON],
        owner: Optional[str] = None,
        wait: float = 30.0,
        lease_ttl: Optional[float] = None,
    ) -> int:
        """Runs the task's nodes until the task is no longer ACTIVE; returns how many it ran.

        Each round acquires the next node (waiting up to ``wait`` seconds), calls
        ``fn(lease)`` while the lease is heartbeated in the background, then completes the
        node with the return value, or fails it with ``{"type", "message"}`` of the
        exception ``fn`` raised (the loop goes on). After an acquire that comes back empty
        it asks TaskStatus and returns once the task is COMPLETED, FAILED or CANCELLED.
        A ``KeyboardInterrupt`` or ``SystemExit`` inside ``fn`` gives the node back (its
        lease ends at once, and it returns to PENDING) and propagates.
        """
        ran = 0
        while True:
            try:
                lease = self.acquire_next(task_id, owner, wait, lease_ttl)
            except TaskClosed:
                return ran
            if lease is None:
                if not _common.task_is_active(self.task_status(task_id)):
                    return ran
                continue
            ran += 1
            lease._run(fn)


class Lease:
    """A lease on one RUNNING node, from :meth:`Client.acquire_next`.

    ``expires_at`` is the whole Unix second the daemon reported (moved on by each
    heartbeat by the daemon's rule). ``context`` is the acquire context (task, node,
    completed dependencies, recent events); ``node`` its node object, ``name`` the node's
    name when the daemon has one. Used as a context manager it heartbeats in the background
    while the block runs; on leaving it completes the node with ``None`` unless the block
    completed or failed it, and an exception fails it with the exception's type and message.
    """

    task_id: str
    node_id: str
    lease_id: str
    owner: Optional[str]
    expires_at: int
    context: Dict[str, Any]
    node: Dict[str, Any]
    name: Optional[str]
    payload_schema: JSON
    attempts: Optional[int]

    def __init__(self, client: Client, result: Mapping[str, Any], connection: _Connection, lease_ttl: Optional[int]):
        self._client = client
        self.raw: Dict[str, Any] = dict(result)
        for key, value in _common.lease_fields(result).items():
            setattr(self, key, value)
        self._connection: Optional[_Connection] = connection
        # A lease dropped unfinished gives its node back: its connection closes.
        self._finalizer = weakref.finalize(self, _drop_pinned, client, connection)
        self._lease_ttl = lease_ttl
        self._ttl = lease_ttl if lease_ttl is not None else max(1, int(self.expires_at - time.time()))
        self._renewer: Optional[_Renewer] = None
        self._state_lock = threading.Lock()
        self.done = False
        """True once the node was completed, failed or given back through this lease."""
        self.lost: Optional[BaseException] = None
        """The error of a refused background heartbeat: the lease ended (expired, cancelled)."""

    def _take_connection(self) -> Any:
        """The pinned connection, now the caller's to close or return to the pool."""
        connection, self._connection = self._connection, None
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        return connection

    def __repr__(self) -> str:
        return f"Lease(task_id={self.task_id!r}, node_id={self.node_id!r}, name={self.name!r}, done={self.done})"

    # -- calls ---------------------------------------------------------------------

    def heartbeat(self, ttl: Optional[float] = None) -> None:
        """Keeps the lease alive (``ttl`` seconds, default: as acquired)."""
        ttl_int = _common.ttl_secs(ttl) if ttl is not None else self._lease_ttl
        self._client.heartbeat_node(self.task_id, self.node_id, self.lease_id, ttl_int)
        self.expires_at = _common.deadline_after(ttl_int if ttl_int is not None else self._ttl)

    def commit_event(self, payload: JSON, action_type: str = "COMMIT_EVENT") -> str:
        """Journals an event for this node; returns its id."""
        return self._client.commit_event(self.task_id, self.node_id, self.lease_id, payload, action_type)

    def complete(self, result: JSON = None) -> str:
        """Completes the node with ``result``; returns the event id."""
        return self._finish(lambda: self._client.complete_node(self.task_id, self.node_id, self.lease_id, result))

    def fail(self, error: JSON = None) -> str:
        """Fails the node with ``error`` (any JSON); returns the event id."""
        return self._finish(lambda: self._client.fail_node(self.task_id, self.node_id, self.lease_id, error))

    def abandon(self) -> None:
        """Gives the node back now: closes the lease's connection, so the daemon expires the
        lease at once (journaled; it counts as an attempt) and the node returns to PENDING."""
        self._stop_heartbeat()
        with self._state_lock:
            self.done = True
            connection = self._take_connection()
        if connection is not None:
            connection.close()
            self._client._checkin(connection)

    def _finish(self, send: Callable[[], str]) -> str:
        self._stop_heartbeat()
        try:
            event_id = send()
        except (TypeError, ValueError):
            raise  # the payload is not JSON: nothing was sent, the lease is still ours
        except BaseException:
            # Refused (the lease had expired, the node was finished, the task cancelled) or
            # the connection broke: either way this lease is over for us.
            self.done = True
            self._release_connection()
            raise
        self.done = True
        self._release_connection()
        return event_id

    def _release_connection(self) -> None:
        with self._state_lock:
            connection = self._take_connection()
        if connection is not None:
            self._client._checkin(connection)

    # -- heartbeats ----------------------------------------------------------------

    def start_heartbeat(self, interval: Optional[float] = None) -> None:
        """Heartbeats in a background thread every ``interval`` s (default a third of the TTL)."""
        if self._renewer is not None or self.done:
            return
        self._renewer = _Renewer(
            f"agentd-lease-{self.node_id}",
            interval if interval is not None else self._ttl / 3.0,
            self.heartbeat,
            lambda: float(self.expires_at),
            self._on_refused,
        )

    def _on_refused(self, error: BaseException) -> None:
        log.warning("lease %s on node %s of task %s lost: %s", self.lease_id, self.node_id, self.task_id, error)
        self.lost = error

    def _stop_heartbeat(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.stop()

    def _client_closed(self) -> None:
        self._stop_heartbeat()
        self.done = True
        self._take_connection()

    def __enter__(self) -> "Lease":
        self.start_heartbeat()
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        self._stop_heartbeat()
        if self.done:
            self._release_connection()
            return
        if exc is None:
            self.complete(None)
        elif isinstance(exc, Exception):
            try:
                self.fail(_common.error_payload(exc))
            except (AgentdError, AgentdConnectionError):
                pass  # the lease was already gone; the block's own exception matters more
        else:
            self.abandon()

    def _run(self, fn: Callable[["Lease"], JSON]) -> None:
        """One round of the worker loop: fn under heartbeats, then complete or fail."""
        self.start_heartbeat()
        try:
            result = fn(self)
        except Exception as error:
            self._stop_heartbeat()
            if not self.done:
                try:
                    self.fail(_common.error_payload(error))
                except (AgentdError, AgentdConnectionError) as refused:
                    log.warning("could not fail node %s after %r: %s", self.node_id, error, refused)
                    self._release_connection()
            return
        except BaseException:
            self.abandon()
            raise
        self._stop_heartbeat()
        if self.done:
            self._release_connection()
            return
        try:
            self.complete(result)
        except (TypeError, ValueError) as error:  # the result is not JSON
            self.fail(_common.error_payload(error))
        except (AgentdError, AgentdConnectionError) as refused:
            log.warning("could not complete node %s: %s", self.node_id, refused)
            self._release_connection()  # lost meanwhile: the daemon has already moved on


class Lock:
    """An exclusive lock on a resource key, renewed in the background while held.

    From :meth:`Client.lock`. ``ttl`` (whole seconds) is how long the lock outlives its
    last renewal; with ``renew`` (the default) a thread renews it every ``ttl/3`` seconds.
    ``wait`` is how long :meth:`acquire` waits in the key's FIFO queue (``None``: as long as
    it takes; 0: not at all). If a renewal is refused (the lock expired and may have gone to
    another owner) the lock is lost: ``on_lost(lock)`` is called if given, otherwise
    :meth:`release` (and so leaving a ``with`` block) raises :class:`LockLost`.
    """

    def __init__(
        self,
        client: Client,
        key: str,
        *,
        ttl: float = 30,
        wait: Optional[float] = None,
        owner: Optional[str] = None,
        provider: Optional[str] = None,
        metadata: JSON = None,
        task_id: Optional[str] = None,
        node_id: Optional[str] = None,
        renew: bool = True,
        on_lost: Optional[Callable[["Lock"], Any]] = None,
    ) -> None:
        self._client = client
        self.key = key
        self.ttl = _common.ttl_secs(ttl)
        self.wait = wait
        self._owner = owner or client.owner
        self.owner: Optional[str] = self._owner
        """The owner asked for; once acquired, the owner the daemon granted the lock to."""
        self.provider = provider
        self.metadata = metadata
        self.task_id = task_id
        self.node_id = node_id
        self.renew = renew
        self.on_lost = on_lost
        self.info: Optional[Dict[str, Any]] = None
        """The lock object the daemon granted (resource_key, lease_id, fencing_token, ...)."""
        self.lease_id: Optional[str] = None
        self.fencing_token: Optional[int] = None
        self.expires_at: Optional[int] = None
        self.lost: Optional[LockLost] = None
        self._lost_reported = False
        self._connection: Optional[_Connection] = None
        self._renewer: Optional[_Renewer] = None
        self._mutex = threading.Lock()

    def _take_connection(self) -> Any:
        """The pinned connection, now the caller's to close or return to the pool."""
        connection, self._connection = self._connection, None
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        return connection

    def __repr__(self) -> str:
        return f"Lock({self.key!r}, held={self.held}, fencing_token={self.fencing_token})"

    @property
    def held(self) -> bool:
        """Acquired, not released, and not known to be lost."""
        return self._connection is not None and self.lost is None

    def acquire(self, wait: Optional[float] = _UNSET) -> bool:
        """Takes the lock; False when ``wait`` ran out with the lock still held by another."""
        if self._connection is not None:
            raise RuntimeError(f"lock {self.key!r} is already held by this Lock object")
        wait = self.wait if wait is _UNSET else wait
        params, parked = _common.acquire_lock_params(
            self.key, self._owner, self.ttl, wait, self.provider, self.metadata, self.task_id, self.node_id
        )
        result, connection = self._client._request_pinned("AcquireResourceLock", params, parked)
        if result is None or connection is None:
            return False
        with self._mutex:
            self._connection = connection
            self.owner = result.get("owner", self._owner)
            self._finalizer = weakref.finalize(self, _drop_pinned, self._client, connection)
            self.info = result
            self.lease_id = result["lease_id"]
            self.fencing_token = result.get("fencing_token")
            self.expires_at = int(result["lease_expires_at"])
            self.lost = None
            self._lost_reported = False
        with self._client._mutex:
            self._client._holders.add(self)
        if self.renew:
            self._renewer = _Renewer(
                f"agentd-lock-{self.key}", self.ttl / 3.0, self._renew, lambda: float(self.expires_at or 0), self._on_refused
            )
        return True

    def _renew(self) -> None:
        self._heartbeat(self.ttl)

    def _heartbeat(self, ttl: int) -> None:
        lease_id = self.lease_id
        if lease_id is None:
            return
        self._client._request("HeartbeatResourceLock", {"resource_key": self.key, "lease_id": lease_id, "ttl_secs": ttl})
        self.expires_at = _common.deadline_after(ttl)

    def _on_refused(self, error: BaseException) -> None:
        """From the renewal thread: the lock is gone."""
        with self._mutex:
            if self.lost is not None or self._connection is None:
                return
            self.lost = self._lost_error(error)
        log.warning("%s", self.lost)
        if self.on_lost is not None:
            self._report_lost()

    def _lost_error(self, error: BaseException) -> LockLost:
        lost = LockLost(
            f"lock {self.key} (fencing token {self.fencing_token}) was lost: {error}",
            data={"resource_key": self.key, "lease_id": self.lease_id, "fencing_token": self.fencing_token},
        )
        lost.__cause__ = error
        return lost

    def _report_lost(self) -> None:
        """Reports the loss once: to on_lost if given, else by raising LockLost."""
        if self._lost_reported or self.lost is None:
            return
        self._lost_reported = True
        if self.on_lost is not None:
            self.on_lost(self)
        else:
            raise self.lost

    def extend(self, ttl: Optional[float] = None) -> None:
        """Renews now (for ``ttl`` seconds, default the lock's); :class:`LockLost` if refused."""
        if self._connection is None:
            raise RuntimeError(f"lock {self.key!r} is not held")
        if self.lost is not None:
            self._report_lost()
            return
        try:
            self._heartbeat(self.ttl if ttl is None else _common.ttl_secs(ttl))
        except AgentdError as error:
            with self._mutex:
                self.lost = self._lost_error(error)
            self._report_lost()

    def release(self) -> None:
        """Releases the lock (and stops its renewal). Raises :class:`LockLost` if the lock
        had been lost meanwhile, unless ``on_lost`` was given (it is called instead)."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.stop()
        with self._mutex:
            connection = self._take_connection()
        if connection is None:
            if self.lost is not None:
                self._report_lost()
                return
            raise RuntimeError(f"lock {self.key!r} is not held")
        try:
            if self.lost is None and self.lease_id is not None:
                try:
                    self._client._request("ReleaseResourceLock", {"resource_key": self.key, "lease_id": self.lease_id})
                except AgentdError as error:
                    self.lost = self._lost_error(error)
                except AgentdConnectionError:
                    connection.close()  # the daemon releases it when this connection closes
        finally:
            self._client._checkin(connection)
        self._report_lost()

    def _client_closed(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.stop()
        self._take_connection()

    def __enter__(self) -> "Lock":
        if not self.acquire():
            raise LockNotAcquired(
                f"lock {self.key} is held by another owner"
                + ("" if self.wait is None else f" (waited {self.wait} s)"),
                data={"resource_key": self.key},
            )
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        if exc is None:
            self.release()
            return
        try:
            self.release()
        except (LockLost, AgentdError, AgentdConnectionError):
            pass  # the block's own exception propagates
