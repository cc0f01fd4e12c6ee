"""The sans-I/O core: everything the sync and the asyncio client share that does no I/O.

- Framing: request lines, answers, and the errors of a connection that failed.
- Calls: for each protocol method, the params to send and how to read its result
  (:class:`Call`).
- The client's settings and the bookkeeping of its pool (:class:`ClientCore`).
- Leases and locks: their state, what the daemon's answers mean for it, and the steps of
  finishing a lease, running a worker round, taking, renewing and releasing a lock
  (:class:`LeaseCore`, :class:`LockCore`), and of the background renewals
  (:class:`RenewerCore`).
- The worker loop (when to stop) and the paging of the event journal (:class:`EventPages`).

The logic that interleaves I/O is written once, as a *flow*: a generator that yields each
step that does I/O as a function of no arguments. The sync client calls the step and sends
its result back into the flow; the asyncio client calls it and awaits the result when it is
awaitable. An exception the step raises is thrown into the flow where it yielded, so the
flow's own ``try``/``except`` decides what it means. See ``client._drive`` and
``aio._drive``. Locks (a mutex in threads, none on an event loop), threads and tasks, sockets
and streams stay in ``client.py`` and ``aio.py``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import socket
import time
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ContextManager,
    Dict,
    Generator,
    Generic,
    Iterator,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
    TypeVar,
    cast,
)

from . import _endpoint
from .errors import (
    AgentdConnectionError,
    AgentdError,
    LockLost,
    LockNotAcquired,
    RequestTooLarge,
    TaskClosed,
    error_from_answer,
)

log = logging.getLogger("agentd_client")

MAX_LINE = 1_048_576
"""The daemon's limit on one request line, counting its newline."""

MAX_DURATION_SECS = 10 * 365 * 86_400
"""The daemon refuses durations (``wait_ms``, ``ttl_secs``) longer than ten years."""

JSON = Any
NodeDefinition = Mapping[str, Any]

_UNSET: Any = object()

T = TypeVar("T")

Step = Callable[[], Any]
"""One step of a flow that does I/O; its result (awaited, on the event loop) is sent back."""

Flow = Generator[Step, Any, T]
"""Logic written once for both clients; see the module's documentation."""


# -- framing -----------------------------------------------------------------------


def encode_request(request_id: int, method: str, params: Optional[Mapping[str, Any]]) -> bytes:
    """One request line. NaN and infinities are refused here: they are not JSON."""
    request: Dict[str, Any] = {"id": request_id, "method": method}
    if params is not None:
        request["params"] = params
    line = json.dumps(request, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"
    if len(line) > MAX_LINE:
        raise RequestTooLarge(
            f"request exceeds {MAX_LINE} bytes ({len(line)} bytes); not sent",
            code=-32001,
            reason="REQUEST_TOO_LARGE",
            method=method,
        )
    return line


def decode_answer(path: str, line: bytes) -> Dict[str, Any]:
    try:
        answer = json.loads(line)
    except ValueError as error:
        raise AgentdConnectionError(path, f"the daemon sent a line that is not JSON: {error}") from None
    if not isinstance(answer, dict):
        raise AgentdConnectionError(path, "the daemon sent an answer that is not an object")
    return answer


def result_of(path: str, raw: bytes, request_id: int, method: str, close: Callable[[], None]) -> Any:
    """The result of an answer line, or the error it carries raised. ``close`` is called
    when the connection cannot carry another request (an answer that is not ours)."""
    try:
        answer = decode_answer(path, raw)
    except AgentdConnectionError:
        close()
        raise
    if answer.get("id") != request_id:
        close()
        if "error" in answer and "id" not in answer:
            raise error_from_answer(answer["error"], method)
        raise AgentdConnectionError(path, f"answer out of order during {method}")
    if "error" in answer:
        raise error_from_answer(answer["error"], method)
    return answer.get("result")


def describe(error: BaseException) -> str:
    """An OS error of a connection in words."""
    if isinstance(error, FileNotFoundError):
        return "no socket at this path (is the daemon running? start it with `agentd serve`)"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (a stale socket file: is the daemon running?)"
    if isinstance(error, PermissionError):
        return "permission denied"
    return f"{type(error).__name__}: {error}"


def no_connection(path: str, timeout: Optional[float], what: str = "connection") -> AgentdConnectionError:
    return AgentdConnectionError(path, f"no {what} within {timeout} s")


def no_answer(path: str, method: str, timeout: Optional[float]) -> AgentdConnectionError:
    return AgentdConnectionError(path, f"no answer to {method} within {timeout} s")


def lost_during(path: str, method: str, error: BaseException) -> AgentdConnectionError:
    return AgentdConnectionError(path, f"connection lost during {method}: {describe(error)}")


class ConnectionCore:
    """What a connection keeps besides its socket: the request ids and whether it is closed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.closed = False
        self.agent: Optional[str] = None
        """The agent the daemon authenticated this connection as (TLS only)."""
        self._next_id = 1

    def close(self) -> None:
        raise NotImplementedError

    def _frame(self, call: "Call[Any]") -> Tuple[int, bytes]:
        """The next request id and the line that sends ``call`` with it."""
        if self.closed:
            raise AgentdConnectionError(self.path, "connection closed")
        request_id = self._next_id
        self._next_id += 1
        return request_id, encode_request(request_id, call.method, call.params)

    def _answer(self, raw: bytes, request_id: int, call: "Call[Any]") -> Any:
        return result_of(self.path, raw, request_id, call.method, self.close)


# -- durations and small rules ----------------------------------------------------------


def wait_ms(wait: Optional[float]) -> Optional[int]:
    """Seconds to wait as the protocol's ``wait_ms``; ``None`` (or inf) is as long as allowed."""
    if wait is None or math.isinf(wait):
        return MAX_DURATION_SECS * 1000
    if wait < 0:
        raise ValueError(f"wait must be at least 0, not {wait}")
    return min(int(math.ceil(wait * 1000)), MAX_DURATION_SECS * 1000)


def ttl_secs(ttl: float) -> int:
    """A TTL in whole seconds (deadlines are whole seconds), at least 1, rounded up."""
    if ttl <= 0:
        raise ValueError(f"ttl must be positive, not {ttl}")
    return min(int(math.ceil(ttl)), MAX_DURATION_SECS)


def deadline_after(ttl: int) -> int:
    """The whole second a TTL ends on, by the daemon's rule: the first at or after now + ttl."""
    return int(math.ceil(time.time() + ttl))


def default_owner() -> str:
    return f"python:{socket.gethostname()}:{os.getpid()}"


def error_payload(error: BaseException) -> Dict[str, Any]:
    """What a failed node records for an exception: its type and message."""
    return {"type": type(error).__name__, "message": str(error)}


def merge_params(params: Optional[Mapping[str, Any]], extra: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    if params is None and not extra:
        return None
    merged: Dict[str, Any] = dict(params or {})
    merged.update(extra)
    return merged


def parked_seconds(params: Optional[Mapping[str, Any]]) -> float:
    """How long the daemon may park a request before answering (its ``wait_ms``)."""
    if isinstance(params, Mapping):
        value = params.get("wait_ms")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value) / 1000.0
    return 0.0


def drop_none(**params: Any) -> Dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _parking(params: Dict[str, Any], wait: Optional[float]) -> float:
    """Adds ``wait_ms`` for a wait that is not 0; returns how long the daemon may park."""
    if wait is None or wait > 0:
        params["wait_ms"] = wait_ms(wait)
        return float(params["wait_ms"]) / 1000.0
    return 0.0


def task_is_active(status: Mapping[str, Any]) -> bool:
    """Whether a TaskStatus answer describes an ACTIVE task.

    The daemon reports ``task.status``; for one that does not (the original), the task is
    taken as active while some node is RUNNING or PENDING without a FAILED dependency
    (directly or through other such nodes).
    """
    task = status.get("task") or {}
    if "status" in task:
        return bool(task["status"] == "ACTIVE")
    nodes: Sequence[Mapping[str, Any]] = status.get("nodes") or []
    if not nodes:
        return True
    by_id = {node["id"]: node for node in nodes}
    dead: Set[str] = {node["id"] for node in nodes if node.get("status") == "FAILED"}
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if node["id"] in dead or node.get("status") != "PENDING":
                continue
            if any(dep in dead for dep in node.get("dependencies") or []):
                dead.add(node["id"])
                changed = True
    return any(
        node.get("status") == "RUNNING" or (node.get("status") == "PENDING" and node["id"] not in dead)
        for node in by_id.values()
    )


def lease_fields(result: Mapping[str, Any]) -> Dict[str, Any]:
    """The attributes of a Lease from an AcquireNextNode result."""
    context = result.get("context") or {}
    node = context.get("node") if isinstance(context, Mapping) else None
    node = node if isinstance(node, Mapping) else {}
    return {
        "task_id": result["task_id"],
        "node_id": result["node_id"],
        "lease_id": result["lease_id"],
        "owner": result.get("lease_owner"),
        "expires_at": int(result["lease_expires_at"]),
        "context": context,
        "node": node,
        "name": node.get("name"),
        "payload_schema": node.get("payload_schema"),
        "attempts": node.get("attempts"),
    }


# -- calls: the params of each method, and how to read its result --------------------------


class Call(Generic[T]):
    """One request before it is sent: ``method`` and ``params``, ``parked`` (the seconds the
    daemon may hold it before answering, added to the answer timeout) and ``read``, which
    turns the answer's result into what the client method returns."""

    __slots__ = ("method", "params", "read", "parked")

    def __init__(
        self, method: str, params: Optional[Mapping[str, Any]], read: Callable[[Any], T], parked: float = 0.0
    ) -> None:
        self.method = method
        self.params = params
        self.read = read
        self.parked = parked

    def __repr__(self) -> str:
        return f"Call({self.method!r})"


def _as_is(result: Any) -> Any:
    return result


def _an_object(result: Any) -> Dict[str, Any]:
    return cast(Dict[str, Any], result)


def _nothing(result: Any) -> None:
    return None


def _event_id(result: Any) -> str:
    return str(result["event_id"])


def _node_ids(result: Any) -> List[str]:
    return list(result["node_ids"])


def _agent(result: Any) -> Optional[str]:
    agent = result.get("agent") if isinstance(result, dict) else None
    return agent if isinstance(agent, str) else None


def authenticate(token: Optional[str]) -> Call[Optional[str]]:
    """The first request over TLS; its result is the agent's name."""
    return Call("Authenticate", {"token": token}, _agent)


def any_method(method: str, params: Optional[Mapping[str, Any]], extra: Mapping[str, Any]) -> Call[Any]:
    merged = merge_params(params, extra)
    return Call(method, merged, _as_is, parked_seconds(merged))


def health() -> Call[Dict[str, Any]]:
    return Call("Health", None, _an_object)


def metrics() -> Call[Dict[str, Any]]:
    return Call("Metrics", None, _an_object)


def describe_interface() -> Call[Dict[str, Any]]:
    return Call("DescribeInterface", None, _an_object)


def register_task(goal: str, nodes: Optional[Sequence[NodeDefinition]], context: JSON) -> Call[str]:
    params: Dict[str, Any] = {"goal": goal, "initial_nodes": list(nodes or [])}
    if context is not None:
        params["context"] = context
    return Call("RegisterTask", params, lambda result: str(result["task_id"]))


def add_nodes(task_id: str, nodes: Sequence[NodeDefinition]) -> Call[List[str]]:
    return Call("AddNodes", {"task_id": task_id, "nodes": list(nodes)}, _node_ids)


def task_status(task_id: str) -> Call[Dict[str, Any]]:
    return Call("TaskStatus", {"task_id": task_id}, _an_object)


def retry_node(task_id: str, node_id: str) -> Call[None]:
    return Call("RetryNode", {"task_id": task_id, "node_id": node_id}, _nothing)


def cancel_task(task_id: str) -> Call[None]:
    return Call("CancelTask", {"task_id": task_id}, _nothing)


def delete_task(task_id: str) -> Call[None]:
    return Call("DeleteTask", {"task_id": task_id}, _nothing)


def list_tasks(status: Optional[str], limit: Optional[int], after: Optional[str]) -> Call[Dict[str, Any]]:
    return Call("ListTasks", drop_none(status=status, limit=limit, after=after), _an_object)


def acquire_next(
    task_id: str, owner: Optional[str], wait: Optional[float], lease_ttl: Optional[float]
) -> Call[Optional[Dict[str, Any]]]:
    """An owner of ``None`` is left out: the daemon then names the lease (over TLS, after the
    authenticated agent). The result is ``None`` when no node was runnable."""
    params: Dict[str, Any] = {"task_id": task_id, "release_on_disconnect": True}
    if owner is not None:
        params["lease_owner"] = owner
    parked = _parking(params, wait)
    if lease_ttl is not None:
        params["lease_ttl_secs"] = ttl_secs(lease_ttl)
    return Call("AcquireNextNode", params, _an_object, parked)


def heartbeat_node(task_id: str, node_id: str, lease_id: str, lease_ttl: Optional[float]) -> Call[None]:
    params: Dict[str, Any] = {"task_id": task_id, "node_id": node_id, "lease_id": lease_id}
    if lease_ttl is not None:
        params["lease_ttl_secs"] = ttl_secs(lease_ttl)
    return Call("HeartbeatNode", params, _nothing)


def commit_event(task_id: str, node_id: str, lease_id: Optional[str], payload: JSON, action_type: str) -> Call[str]:
    params = drop_none(task_id=task_id, node_id=node_id, lease_id=lease_id, action_type=action_type)
    params["payload"] = payload
    return Call("CommitEvent", params, _event_id)


def complete_node(task_id: str, node_id: str, lease_id: str, result: JSON) -> Call[str]:
    params = {"task_id": task_id, "node_id": node_id, "lease_id": lease_id, "result_payload": result}
    return Call("CompleteNode", params, _event_id)


def fail_node(task_id: str, node_id: str, lease_id: str, error: JSON) -> Call[str]:
    params = {"task_id": task_id, "node_id": node_id, "lease_id": lease_id, "error_payload": error}
    return Call("FailNode", params, _event_id)


def read_events(
    task_id: str, after: int, node_id: Optional[str], limit: Optional[int], wait: Optional[float]
) -> Call[Dict[str, Any]]:
    params = drop_none(task_id=task_id, after_seq=after, node_id=node_id, limit=limit)
    return Call("ReadEvents", params, _an_object, _parking(params, wait))


def list_locks(prefix: Optional[str]) -> Call[List[Dict[str, Any]]]:
    params = None if prefix is None else {"prefix": prefix}
    return Call("ListResourceLocks", params, lambda result: list(result["locks"]))


def acquire_lock(
    key: str,
    owner: Optional[str],
    ttl: int,
    wait: Optional[float],
    provider: Optional[str],
    metadata: Any,
    task_id: Optional[str],
    node_id: Optional[str],
) -> Call[Optional[Dict[str, Any]]]:
    """The result is ``None`` when ``wait`` ran out with the lock held by another."""
    params: Dict[str, Any] = {"resource_key": key, "ttl_secs": ttl, "release_on_disconnect": True}
    params.update(drop_none(owner=owner, provider=provider, metadata=metadata, task_id=task_id, node_id=node_id))
    return Call("AcquireResourceLock", params, _an_object, _parking(params, wait))


def heartbeat_lock(key: str, lease_id: str, ttl: int) -> Call[None]:
    return Call("HeartbeatResourceLock", {"resource_key": key, "lease_id": lease_id, "ttl_secs": ttl}, _nothing)


def release_lock(key: str, lease_id: str) -> Call[None]:
    return Call("ReleaseResourceLock", {"resource_key": key, "lease_id": lease_id}, _nothing)


# -- the client ----------------------------------------------------------------------------


class PooledConnection(Protocol):
    closed: bool
    agent: Optional[str]

    def stale(self) -> bool: ...

    def close(self) -> None: ...


ConnT = TypeVar("ConnT", bound=PooledConnection)
LockT = TypeVar("LockT")


class ClientCore(Generic[ConnT, LockT]):
    """A client's settings, its pool of idle and open connections, and what it holds.

    The pool's state changes under ``_mutex``: a lock for the sync client (one connection per
    thread), a no-op on an event loop. Opening, reading and writing are the subclass's.
    """

    _name = "Client"
    """The class's name in ``repr`` and messages (the same for a subclass)."""

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
            self.owner = None if self.tls else default_owner()
        self.timeout = timeout
        self._mutex = self._new_mutex()
        self._idle: List[ConnT] = []
        self._open: Set[ConnT] = set()
        self._holders: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._closed = False

    @staticmethod
    def _new_mutex() -> ContextManager[Any]:
        """What guards state shared between threads: a lock, or a no-op on an event loop."""
        raise NotImplementedError

    def __repr__(self) -> str:
        agent = f", agent={self.agent!r}" if self.tls else ""
        return f"{self._name}({self.path!r}, owner={self.owner!r}{agent})"

    # -- the pool ------------------------------------------------------------------------

    def _pooled(self) -> Optional[ConnT]:
        """An idle connection that is still open, if there is one; stale ones are dropped."""
        with self._mutex:
            if self._closed:
                raise AgentdConnectionError(self.path, "the client is closed")
            while self._idle:
                connection = self._idle.pop()
                if not connection.stale():
                    return connection
                connection.close()
                self._open.discard(connection)
        return None

    def _opened(self, connection: ConnT) -> ConnT:
        """A connection just opened, now counted as open (or closed: the client was closed)."""
        with self._mutex:
            if self._closed:
                connection.close()
                raise AgentdConnectionError(self.path, "the client is closed")
            self._open.add(connection)
            if connection.agent is not None:
                self.agent = connection.agent
        return connection

    def _checkin(self, connection: ConnT) -> None:
        with self._mutex:
            if connection.closed or self._closed:
                connection.close()
                self._open.discard(connection)
            else:
                self._idle.append(connection)

    def _hold(self, holder: T) -> T:
        """Records a lease or lock, so that closing the client ends it."""
        with self._mutex:
            self._holders.add(holder)
        return holder

    def _close_all(self) -> List[ConnT]:
        """Marks the client closed, ends what it holds and closes every connection; returns them."""
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
        return connections

    def _timeout(self, parked: float) -> Optional[float]:
        return None if self.timeout is None else self.timeout + parked

    # -- locks and the worker loop ------------------------------------------------------

    def _new_lock(self, key: str, **options: Any) -> LockT:
        raise NotImplementedError

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
        on_lost: Optional[Callable[[LockT], Any]] = None,
    ) -> LockT:
        """A lock on ``key``, not yet acquired: use ``with`` (``async with``) or ``acquire()``."""
        return self._new_lock(
            key, ttl=ttl, wait=wait, owner=owner, provider=provider, metadata=metadata,
            task_id=task_id, node_id=node_id, renew=renew, on_lost=on_lost,
        )

    if TYPE_CHECKING:

        def acquire_next(
            self, task_id: str, owner: Optional[str] = None, wait: Optional[float] = 0, lease_ttl: Optional[float] = None
        ) -> Any: ...

        def task_status(self, task_id: str) -> Any: ...

    def _work_flow(
        self, task_id: str, fn: Callable[[Any], Any], owner: Optional[str], wait: float, lease_ttl: Optional[float]
    ) -> Flow[int]:
        """The worker loop: a round per node until the task is closed or no longer ACTIVE."""
        ran = 0
        while True:
            try:
                lease = yield lambda: self.acquire_next(task_id, owner, wait, lease_ttl)
            except TaskClosed:
                return ran
            if lease is None:
                status = yield lambda: self.task_status(task_id)
                if not task_is_active(status):
                    return ran
                continue
            ran += 1
            yield from lease._run_flow(fn)


class EventPages:
    """Where the journal is read from next (``seq``), and whether there is more to read."""

    def __init__(self, task_id: str, after: int, node_id: Optional[str], follow: bool, limit: int, poll: float) -> None:
        self.task_id = task_id
        self.seq = after
        self.node_id = node_id
        self.follow = follow
        self.limit = limit
        self.poll = poll
        self.more = True

    @property
    def next_page(self) -> Tuple[str, int, Optional[str], Optional[int], Optional[float]]:
        """The arguments of ``read_events`` for the next page."""
        return self.task_id, self.seq, self.node_id, self.limit, self.poll if self.follow else 0

    def events(self, page: Mapping[str, Any]) -> Iterator[Dict[str, Any]]:
        """The page's events, oldest first; ``seq`` follows them."""
        events = page.get("events") or []
        for event in events:
            self.seq = max(self.seq, int(event.get("seq", self.seq)))
            yield event
        self.seq = max(self.seq, int(page.get("next_seq", self.seq)))
        self.more = self.follow or len(events) >= self.limit


# -- leases and locks ----------------------------------------------------------------------


def drop_pinned(client: Any, connection: Any) -> None:
    """For a lease or lock object collected while still holding: its connection closes, so
    the daemon frees the node or lock at once (release_on_disconnect)."""
    connection.close()
    try:
        client._checkin(connection)
    except Exception:
        pass


class Holder:
    """A lease or lock: it keeps the connection it was taken on (pinned) until it ends, and
    has it renewed in the background (``_renewer``) while it holds."""

    _client: Any
    _connection: Optional[Any] = None
    _renewer: "Optional[RenewerCore]" = None

    def _new_renewer(self, interval: float) -> "RenewerCore":
        """A renewer (a thread, or a task) that renews every ``interval`` s, started."""
        raise NotImplementedError

    def _stop_renewals(self) -> Any:
        """A step: ends the renewals once one in progress has ended (in a thread it waits;
        on an event loop it returns what to await)."""
        renewer, self._renewer = self._renewer, None
        return None if renewer is None else renewer.stop()

    def _halt_renewals(self) -> None:
        """Ends the renewals without waiting for one in progress to end."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.halt()

    def _pin(self, connection: Any) -> None:
        self._connection = connection
        # An object dropped while holding gives back what it holds: its connection closes.
        self._finalizer = weakref.finalize(self, drop_pinned, self._client, connection)

    def _take_connection(self) -> Any:
        """The pinned connection, now the caller's to close or return to the pool."""
        connection, self._connection = self._connection, None
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        return connection


class LeaseCore(Holder):
    """A lease's state and flows; ``_state_lock`` guards ``done`` and the pinned connection."""

    _name = "Lease"

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

    def __init__(self, client: Any, result: Mapping[str, Any], connection: Any, lease_ttl: Optional[float]) -> None:
        self._client = client
        self.raw: Dict[str, Any] = dict(result)
        for key, value in lease_fields(result).items():
            setattr(self, key, value)
        self._pin(connection)
        self._lease_ttl = None if lease_ttl is None else ttl_secs(lease_ttl)
        self._ttl = self._lease_ttl if self._lease_ttl is not None else max(1, int(self.expires_at - time.time()))
        self._state_lock: ContextManager[Any] = client._new_mutex()
        self.done = False
        """True once the node was completed, failed or given back through this lease."""
        self.lost: Optional[BaseException] = None
        """The error of a refused background heartbeat: the lease ended (expired, cancelled)."""

    if TYPE_CHECKING:

        def complete(self, result: JSON = None) -> Any: ...

        def fail(self, error: JSON = None) -> Any: ...

    def __repr__(self) -> str:
        return (
            f"{self._name}(task_id={self.task_id!r}, node_id={self.node_id!r}, "
            f"name={self.name!r}, done={self.done})"
        )

    def start_heartbeat(self, interval: Optional[float] = None) -> None:
        """Heartbeats in the background (a thread; with ``AsyncClient``, a task) every
        ``interval`` s (default a third of the TTL)."""
        if self._renewer is None and not self.done:
            self._renewer = self._new_renewer(interval if interval is not None else self._ttl / 3.0)

    def _deadline(self) -> float:
        return float(self.expires_at)

    def _mark_lost(self, error: BaseException) -> None:
        """A background heartbeat was refused (or failed until the lease ran out)."""
        log.warning("lease %s on node %s of task %s lost: %s", self.lease_id, self.node_id, self.task_id, error)
        self.lost = error

    def _release_connection(self) -> None:
        """The pinned connection goes back to the pool."""
        with self._state_lock:
            connection = self._take_connection()
        if connection is not None:
            self._client._checkin(connection)

    def _drop_connection(self) -> None:
        """The lease is over for us and its connection closes: the daemon expires the lease
        at once (journaled; it counts as an attempt) and the node returns to PENDING."""
        with self._state_lock:
            self.done = True
            connection = self._take_connection()
        if connection is not None:
            connection.close()
            self._client._checkin(connection)

    def _abandon_flow(self) -> Flow[None]:
        yield self._stop_renewals
        self._give_back()

    def _give_back(self) -> None:
        """Ends the lease now (see ``_drop_connection``), without waiting for anything: it
        may be running because the work was interrupted or cancelled."""
        self._halt_renewals()
        self._drop_connection()

    def _client_closed(self) -> None:
        """The client closed: its connections close without us."""
        self._halt_renewals()
        self.done = True
        self._take_connection()

    def _heartbeat_flow(self, ttl: Optional[float]) -> Flow[None]:
        ttl_int = ttl_secs(ttl) if ttl is not None else self._lease_ttl
        yield lambda: self._client.heartbeat_node(self.task_id, self.node_id, self.lease_id, ttl_int)
        self.expires_at = deadline_after(ttl_int if ttl_int is not None else self._ttl)

    def _complete_flow(self, result: JSON) -> Flow[str]:
        return self._finish_flow(lambda: self._client.complete_node(self.task_id, self.node_id, self.lease_id, result))

    def _fail_flow(self, error: JSON) -> Flow[str]:
        return self._finish_flow(lambda: self._client.fail_node(self.task_id, self.node_id, self.lease_id, error))

    def _finish_flow(self, send: Step) -> Flow[str]:
        yield self._stop_renewals
        try:
            event_id = yield send
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
        return cast(str, event_id)

    def _exit_flow(self, exc: Optional[BaseException]) -> Flow[None]:
        """Leaving a ``with`` block: complete with ``None``, fail with the block's exception,
        or give the node back for an interruption (``KeyboardInterrupt``, a cancellation)."""
        yield self._stop_renewals
        if self.done:
            self._release_connection()
            return
        if exc is None:
            yield lambda: self.complete(None)
        elif isinstance(exc, Exception):
            payload = error_payload(exc)
            try:
                yield lambda: self.fail(payload)
            except (AgentdError, AgentdConnectionError):
                pass  # the lease was already gone; the block's own exception matters more
        else:
            yield self._give_back

    def _run_flow(self, fn: Callable[[Any], Any]) -> Flow[None]:
        """One round of the worker loop: ``fn`` under heartbeats, then complete or fail."""
        yield self.start_heartbeat
        try:
            result = yield lambda: fn(self)
        except Exception as error:
            yield self._stop_renewals
            if not self.done:
                payload = error_payload(error)
                try:
                    yield lambda: self.fail(payload)
                except (AgentdError, AgentdConnectionError) as refused:
                    log.warning("could not fail node %s after %r: %s", self.node_id, error, refused)
                    self._release_connection()
            return
        except BaseException:
            yield self._give_back
            raise
        yield self._stop_renewals
        if self.done:
            self._release_connection()
            return
        try:
            yield lambda: self.complete(result)
        except (TypeError, ValueError) as error:  # the result is not JSON
            payload = error_payload(error)
            yield lambda: self.fail(payload)
        except (AgentdError, AgentdConnectionError) as refused:
            log.warning("could not complete node %s: %s", self.node_id, refused)
            self._release_connection()  # lost meanwhile: the daemon has already moved on


L = TypeVar("L", bound="LockCore[Any]")


class LockCore(Holder, Generic[L]):
    """A lock's state and flows (``L`` is the concrete lock class, which ``on_lost`` gets).

    ``_mutex`` guards the state the renewals change (a lock for the sync client's thread,
    a no-op on an event loop).
    """

    _name = "Lock"

    def __init__(
        self,
        client: Any,
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
        on_lost: Optional[Callable[[L], Any]] = None,
    ) -> None:
        self._client = client
        self.key = key
        self.ttl = ttl_secs(ttl)
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
        self._mutex: ContextManager[Any] = client._new_mutex()

    if TYPE_CHECKING:

        def release(self) -> Any: ...

        def _report_lost(self) -> Any: ...

    def __repr__(self) -> str:
        return f"{self._name}({self.key!r}, held={self.held}, fencing_token={self.fencing_token})"

    @property
    def held(self) -> bool:
        """Acquired, not released, and not known to be lost."""
        return self._connection is not None and self.lost is None

    def _deadline(self) -> float:
        return float(self.expires_at or 0)

    def _acquire_flow(self, wait: Optional[float]) -> Flow[bool]:
        if self._connection is not None:
            raise RuntimeError(f"lock {self.key!r} is already held by this {self._name} object")
        wait = self.wait if wait is _UNSET else wait
        call = acquire_lock(self.key, self._owner, self.ttl, wait, self.provider, self.metadata, self.task_id, self.node_id)
        result, connection = yield lambda: self._client._request_pinned(call)
        if result is None or connection is None:
            return False
        with self._mutex:
            self._pin(connection)
            self.owner = result.get("owner", self._owner)
            self.info = result
            self.lease_id = result["lease_id"]
            self.fencing_token = result.get("fencing_token")
            self.expires_at = int(result["lease_expires_at"])
            self.lost = None
            self._lost_reported = False
        self._client._hold(self)
        if self.renew:
            self._renewer = self._new_renewer(self.ttl / 3.0)
        return True

    def _not_acquired(self) -> LockNotAcquired:
        return LockNotAcquired(
            f"lock {self.key} is held by another owner" + ("" if self.wait is None else f" (waited {self.wait} s)"),
            data={"resource_key": self.key},
        )

    def _heartbeat_flow(self, ttl: int) -> Flow[None]:
        lease_id = self.lease_id
        if lease_id is None:
            return
        call = heartbeat_lock(self.key, lease_id, ttl)
        yield lambda: self._client._request(call)
        self.expires_at = deadline_after(ttl)

    def _lost_error(self, error: BaseException) -> LockLost:
        lost = LockLost(
            f"lock {self.key} (fencing token {self.fencing_token}) was lost: {error}",
            data={"resource_key": self.key, "lease_id": self.lease_id, "fencing_token": self.fencing_token},
        )
        lost.__cause__ = error
        return lost

    def _mark_lost(self, error: BaseException) -> bool:
        """A renewal was refused: the lock is gone. True when ``on_lost`` is to be told."""
        with self._mutex:
            if self.lost is not None or self._connection is None:
                return False
            self.lost = self._lost_error(error)
        log.warning("%s", self.lost)
        return self.on_lost is not None

    def _claim_report(self) -> bool:
        """Reports the loss once: True when ``on_lost`` is to be called now; raises
        :class:`LockLost` when there is no ``on_lost``."""
        if self._lost_reported or self.lost is None:
            return False
        self._lost_reported = True
        if self.on_lost is None:
            raise self.lost
        return True

    def _extend_flow(self, ttl: Optional[float]) -> Flow[None]:
        if self._connection is None:
            raise RuntimeError(f"lock {self.key!r} is not held")
        if self.lost is not None:
            yield self._report_lost
            return
        try:
            yield from self._heartbeat_flow(self.ttl if ttl is None else ttl_secs(ttl))
        except AgentdError as error:
            with self._mutex:
                self.lost = self._lost_error(error)
            yield self._report_lost

    def _release_flow(self) -> Flow[None]:
        yield self._stop_renewals
        with self._mutex:
            connection = self._take_connection()
        if connection is None:
            if self.lost is not None:
                yield self._report_lost
                return
            raise RuntimeError(f"lock {self.key!r} is not held")
        try:
            if self.lost is None and self.lease_id is not None:
                call = release_lock(self.key, self.lease_id)
                try:
                    yield lambda: self._client._request(call)
                except AgentdError as error:
                    self.lost = self._lost_error(error)
                except AgentdConnectionError:
                    connection.close()  # the daemon releases it when this connection closes
        finally:
            self._client._checkin(connection)
        yield self._report_lost

    def _client_closed(self) -> None:
        """The client closed: its connections close without us."""
        self._halt_renewals()
        self._take_connection()

    def _exit_flow(self, exc: Optional[BaseException]) -> Flow[None]:
        if exc is None:
            yield self.release
            return
        try:
            yield self.release
        except (LockLost, AgentdError, AgentdConnectionError):
            pass  # the block's own exception propagates


class RenewerCore:
    """Calls ``renew`` every ``interval`` seconds until stopped.

    ``renew`` raising an :class:`AgentdError` (a refusal by the daemon) ends the renewals and
    reports the error to ``on_refused``. Connection errors are retried, more often, until the
    deadline ``expires_at()`` has passed; then ``on_refused`` gets the connection error.
    """

    RETRY = 0.5
    """The seconds between tries after a connection error (at most ``interval``)."""

    def __init__(
        self,
        interval: float,
        renew: Callable[[], Any],
        expires_at: Callable[[], float],
        on_refused: Callable[[BaseException], Any],
        name: str = "agentd-renewer",
    ) -> None:
        self.interval = interval
        self.name = name
        self._renew = renew
        self._expires_at = expires_at
        self._on_refused = on_refused
        self._start()

    def _start(self) -> None:
        """Starts the renewals (``_flow``) in the background."""
        raise NotImplementedError

    def stop(self) -> Any:
        """Stops the renewals once one in progress has ended (returns what to await on an
        event loop)."""
        raise NotImplementedError

    def halt(self) -> None:
        """Stops the renewals without waiting for one in progress."""
        raise NotImplementedError

    def _sleep(self, delay: float) -> Any:
        """Waits ``delay`` s; true (or awaitable to true) when stopped meanwhile."""
        raise NotImplementedError

    def _stopped(self) -> bool:
        raise NotImplementedError

    def _paused(self) -> bool:
        raise NotImplementedError

    def _flow(self) -> Flow[None]:
        delay = self.interval
        while not (yield lambda: self._sleep(delay)):
            delay = self.interval
            if self._paused():
                continue
            try:
                yield self._renew
            except AgentdError as error:
                if not self._stopped():
                    yield functools.partial(self._on_refused, error)
                return
            except AgentdConnectionError as error:
                if time.time() >= self._expires_at():
                    if not self._stopped():
                        yield functools.partial(self._on_refused, error)
                    return
                delay = min(self.interval, self.RETRY)
