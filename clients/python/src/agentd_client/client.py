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

What does no I/O (the params of each call, reading answers, the flows of leases and locks,
the worker loop's decisions) is in ``_core``, shared with the asyncio client; this module
has the sockets and the threads.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, cast

from . import _core, _endpoint
from ._core import JSON, NodeDefinition, _UNSET, Call, Flow
from ._endpoint import Endpoint
from .errors import AgentdConnectionError

__all__ = ["Client", "Lock", "Lease"]

T = TypeVar("T")


def _drive(flow: Flow[T]) -> T:
    """Runs a flow of ``_core`` in this thread: each step it yields is called here, and its
    result sent back into the flow or its exception thrown back in."""
    outcome: Any = None
    failure: Optional[BaseException] = None
    while True:
        try:
            step = flow.send(outcome) if failure is None else flow.throw(failure)
        except StopIteration as stop:
            return cast(T, stop.value)
        try:
            outcome, failure = step(), None
        except BaseException as error:
            outcome, failure = None, error


class _Connection(_core.ConnectionCore):
    """One connection carrying one request at a time: to a Unix socket, or a TLS connection
    that has authenticated (``agent`` is the name the daemon answered)."""

    def __init__(self, endpoint: Endpoint, timeout: Optional[float]) -> None:
        super().__init__(endpoint.address)
        self._buffer = bytearray()
        self._tls = endpoint.tls
        self._sock = self._open_tls(endpoint, timeout) if endpoint.tls else self._open_unix(endpoint.address, timeout)
        if endpoint.tls:
            authenticate = _core.authenticate(endpoint.token)
            try:
                self.agent = authenticate.read(self.request(authenticate, timeout))
            except BaseException:
                self.close()  # a refused token: the daemon closes the connection too
                raise

    @staticmethod
    def _open_unix(path: str, timeout: Optional[float]) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
        except socket.timeout:
            sock.close()
            raise _core.no_connection(path, timeout) from None
        except OSError as error:
            sock.close()
            raise AgentdConnectionError(path, _core.describe(error)) from None
        return sock

    @staticmethod
    def _open_tls(endpoint: Endpoint, timeout: Optional[float]) -> socket.socket:
        assert endpoint.host is not None and endpoint.port is not None and endpoint.context is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            raw = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
        except socket.timeout:
            raise _core.no_connection(endpoint.address, timeout) from None
        except OSError as error:
            raise _endpoint.handshake_error(endpoint, error) from None
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if deadline is not None:
                raw.settimeout(max(deadline - time.monotonic(), 0.001))
            return endpoint.context.wrap_socket(raw, server_hostname=endpoint.host)
        except socket.timeout:
            raw.close()
            raise _core.no_connection(endpoint.address, timeout, "TLS handshake") from None
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

    def request(self, call: Call[Any], timeout: Optional[float]) -> Any:
        """Sends ``call`` and returns the result of its answer (not yet read by ``call.read``)."""
        request_id, line = self._frame(call)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._sock.settimeout(timeout)
            self._sock.sendall(line)
            raw = self._read_line(deadline)
        except socket.timeout:
            self.close()
            raise _core.no_answer(self.path, call.method, timeout) from None
        except OSError as error:
            self.close()
            raise _core.lost_during(self.path, call.method, error) from None
        except BaseException:
            # Interrupted mid-request: the answer would arrive later and be read as the
            # answer of the next request. The connection cannot be used again.
            self.close()
            raise
        return self._answer(raw, request_id, call)

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


class _Renewer(_core.RenewerCore):
    """A background thread that calls ``renew`` every ``interval`` seconds until stopped
    (the rules are ``_core.RenewerCore``'s)."""

    def _start(self) -> None:
        self._stop = threading.Event()
        self.paused = threading.Event()  # a test hook: while set, renewals are skipped
        self._thread = threading.Thread(target=_drive, args=(self._flow(),), name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops the renewals; waits for one in progress (unless called from the renewal)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    halt = stop

    def _sleep(self, delay: float) -> bool:
        return self._stop.wait(delay)

    def _stopped(self) -> bool:
        return self._stop.is_set()

    def _paused(self) -> bool:
        return self.paused.is_set()


class Client(_core.ClientCore[_Connection, "Lock"]):
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

    @staticmethod
    def _new_mutex() -> ContextManager[Any]:
        return threading.Lock()

    # -- connections ---------------------------------------------------------------

    def _checkout(self) -> _Connection:
        return self._pooled() or self._opened(_Connection(self._endpoint, self.timeout))

    def _request(self, call: Call[T]) -> T:
        connection = self._checkout()
        try:
            return call.read(connection.request(call, self._timeout(call.parked)))
        finally:
            self._checkin(connection)

    def _request_pinned(self, call: Call[Any]) -> Tuple[Any, Optional[_Connection]]:
        """A request whose success result keeps its connection: the caller then owns it."""
        connection = self._checkout()
        try:
            result = call.read(connection.request(call, self._timeout(call.parked)))
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
        self._close_all()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- any method ----------------------------------------------------------------

    def call(self, method: str, params: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> Any:
        """Sends any method with raw params (a dict, keywords, or both) and returns its result.

        A ``wait_ms`` in the params extends the answer timeout by that long.
        """
        return self._request(_core.any_method(method, params, kwargs))

    def health(self) -> Dict[str, Any]:
        return self._request(_core.health())

    def metrics(self) -> Dict[str, Any]:
        return self._request(_core.metrics())

    def describe_interface(self) -> Dict[str, Any]:
        return self._request(_core.describe_interface())

    # -- tasks ---------------------------------------------------------------------

    def register_task(
        self, goal: str, nodes: Optional[Sequence[NodeDefinition]] = None, context: JSON = None
    ) -> str:
        """Registers a task and returns its id. ``nodes`` are node definitions as the
        protocol has them (``id``, ``dependencies``, ``payload_schema``, ``name``,
        ``max_attempts``), passed on as given."""
        return self._request(_core.register_task(goal, nodes, context))

    def add_nodes(self, task_id: str, nodes: Sequence[NodeDefinition]) -> List[str]:
        """Appends nodes to a live task; returns their ids in the order given."""
        return self._request(_core.add_nodes(task_id, nodes))

    def task_status(self, task_id: str) -> Dict[str, Any]:
        """``{"task": {..., "status"}, "counts": {...}, "nodes": [...]}``."""
        return self._request(_core.task_status(task_id))

    def retry_node(self, task_id: str, node_id: str) -> None:
        self._request(_core.retry_node(task_id, node_id))

    def cancel_task(self, task_id: str) -> None:
        self._request(_core.cancel_task(task_id))

    def delete_task(self, task_id: str) -> None:
        self._request(_core.delete_task(task_id))

    def list_tasks(
        self, status: Optional[str] = None, limit: Optional[int] = None, after: Optional[str] = None
    ) -> Dict[str, Any]:
        """One page: ``{"tasks": [...], "next_after": id or None}``, newest first."""
        return self._request(_core.list_tasks(status, limit, after))

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
        call = _core.acquire_next(task_id, owner or self.owner, wait, lease_ttl)
        result, connection = self._request_pinned(call)
        if result is None or connection is None:
            return None
        return self._hold(Lease(self, result, connection, lease_ttl))

    def heartbeat_node(self, task_id: str, node_id: str, lease_id: str, lease_ttl: Optional[float] = None) -> None:
        self._request(_core.heartbeat_node(task_id, node_id, lease_id, lease_ttl))

    def commit_event(
        self, task_id: str, node_id: str, lease_id: Optional[str], payload: JSON, action_type: str = "COMMIT_EVENT"
    ) -> str:
        return self._request(_core.commit_event(task_id, node_id, lease_id, payload, action_type))

    def complete_node(self, task_id: str, node_id: str, lease_id: str, result: JSON = None) -> str:
        return self._request(_core.complete_node(task_id, node_id, lease_id, result))

    def fail_node(self, task_id: str, node_id: str, lease_id: str, error: JSON = None) -> str:
        return self._request(_core.fail_node(task_id, node_id, lease_id, error))

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
        return self._request(_core.read_events(task_id, after, node_id, limit, wait))

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
        pages = _core.EventPages(task_id, after, node_id, follow, limit, poll)
        while pages.more:
            yield from pages.events(self.read_events(*pages.next_page))

    # -- locks ---------------------------------------------------------------------

    def _new_lock(self, key: str, **options: Any) -> "Lock":
        return Lock(self, key, **options)

    def locks(self, prefix: Optional[str] = None) -> List[Dict[str, Any]]:
        """The active locks (those whose key starts with ``prefix``), sorted by key."""
        return self._request(_core.list_locks(prefix))

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
        return _drive(self._work_flow(task_id, fn, owner, wait, lease_ttl))


class Lease(_core.LeaseCore):
    """A lease on one RUNNING node, from :meth:`Client.acquire_next`.

    ``expires_at`` is the whole Unix second the daemon reported (moved on by each
    heartbeat by the daemon's rule). ``context`` is the acquire context (task, node,
    completed dependencies, recent events); ``node`` its node object, ``name`` the node's
    name when the daemon has one. Used as a context manager it heartbeats in the background
    while the block runs; on leaving it completes the node with ``None`` unless the block
    completed or failed it, and an exception fails it with the exception's type and message.
    """

    _client: Client
    _renewer: Optional[_Renewer] = None

    # -- calls ---------------------------------------------------------------------

    def heartbeat(self, ttl: Optional[float] = None) -> None:
        """Keeps the lease alive (``ttl`` seconds, default: as acquired)."""
        _drive(self._heartbeat_flow(ttl))

    def commit_event(self, payload: JSON, action_type: str = "COMMIT_EVENT") -> str:
        """Journals an event for this node; returns its id."""
        return self._client.commit_event(self.task_id, self.node_id, self.lease_id, payload, action_type)

    def complete(self, result: JSON = None) -> str:
        """Completes the node with ``result``; returns the event id."""
        return _drive(self._complete_flow(result))

    def fail(self, error: JSON = None) -> str:
        """Fails the node with ``error`` (any JSON); returns the event id."""
        return _drive(self._fail_flow(error))

    def abandon(self) -> None:
        """Gives the node back now: closes the lease's connection, so the daemon expires the
        lease at once (journaled; it counts as an attempt) and the node returns to PENDING."""
        _drive(self._abandon_flow())

    # -- heartbeats ----------------------------------------------------------------

    def _new_renewer(self, interval: float) -> _Renewer:
        return _Renewer(interval, self.heartbeat, self._deadline, self._mark_lost, f"agentd-lease-{self.node_id}")

    def __enter__(self) -> "Lease":
        self.start_heartbeat()
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        _drive(self._exit_flow(exc))

    def _run(self, fn: Callable[["Lease"], JSON]) -> None:
        """One round of the worker loop: fn under heartbeats, then complete or fail."""
        _drive(self._run_flow(fn))


class Lock(_core.LockCore["Lock"]):
    """An exclusive lock on a resource key, renewed in the background while held.

    From :meth:`Client.lock`. ``ttl`` (whole seconds) is how long the lock outlives its
    last renewal; with ``renew`` (the default) a thread renews it every ``ttl/3`` seconds.
    ``wait`` is how long :meth:`acquire` waits in the key's FIFO queue (``None``: as long as
    it takes; 0: not at all). If a renewal is refused (the lock expired and may have gone to
    another owner) the lock is lost: ``on_lost(lock)`` is called if given, otherwise
    :meth:`release` (and so leaving a ``with`` block) raises :class:`LockLost`.
    """

    _client: Client
    _renewer: Optional[_Renewer] = None

    def acquire(self, wait: Optional[float] = _UNSET) -> bool:
        """Takes the lock; False when ``wait`` ran out with the lock still held by another."""
        return _drive(self._acquire_flow(wait))

    def _new_renewer(self, interval: float) -> _Renewer:
        return _Renewer(interval, self._renew, self._deadline, self._on_refused, f"agentd-lock-{self.key}")

    def _renew(self) -> None:
        _drive(self._heartbeat_flow(self.ttl))

    def _on_refused(self, error: BaseException) -> None:
        """From the renewal thread: the lock is gone."""
        if self._mark_lost(error):
            self._report_lost()

    def _report_lost(self) -> None:
        """Reports the loss once: to on_lost if given, else by raising LockLost."""
        if self._claim_report() and self.on_lost is not None:
            self.on_lost(self)

    def extend(self, ttl: Optional[float] = None) -> None:
        """Renews now (for ``ttl`` seconds, default the lock's); :class:`LockLost` if refused."""
        _drive(self._extend_flow(ttl))

    def release(self) -> None:
        """Releases the lock (and stops its renewal). Raises :class:`LockLost` if the lock
        had been lost meanwhile, unless ``on_lost`` was given (it is called instead)."""
        _drive(self._release_flow())

    def __enter__(self) -> "Lock":
        if not self.acquire():
            raise self._not_acquired()
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        _drive(self._exit_flow(exc))
