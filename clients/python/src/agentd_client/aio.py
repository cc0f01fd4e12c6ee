"""The asyncio client: :class:`AsyncClient`, :class:`AsyncLock` and :class:`AsyncLease`.

The same surface as the sync client with ``await`` and ``async with``, and the same
connection rules: a pool of connections, one request at a time on each (no pipelining), so
a parked call never delays another task's heartbeat; what it takes is taken with
``release_on_disconnect`` on a connection kept for that lease or lock. An ``AsyncClient``
belongs to the event loop it is first used on; it is not for use from other threads.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import weakref
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from . import _common, _endpoint
from ._common import JSON, NodeDefinition, _UNSET
from ._endpoint import Endpoint
from .client import _describe, _drop_pinned, log
from .errors import AgentdConnectionError, AgentdError, LockLost, LockNotAcquired, TaskClosed

__all__ = ["AsyncClient", "AsyncLock", "AsyncLease"]

_READ_LIMIT = 1 << 30  # answers (a big TaskStatus) may be far longer than a request line


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class _AsyncConnection:
    def __init__(
        self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: bool = False
    ) -> None:
        self.path = path
        self.tls = tls
        self.closed = False
        self._reader = reader
        self._writer = writer
        self._next_id = 1
        self.agent: Optional[str] = None

    @classmethod
    async def open(cls, endpoint: Endpoint, timeout: Optional[float]) -> "_AsyncConnection":
        """A connection to the endpoint; over TLS, handshaken and authenticated."""
        path = endpoint.address
        if not endpoint.tls:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path, limit=_READ_LIMIT), timeout)
            except asyncio.TimeoutError:
                raise AgentdConnectionError(path, f"no connection within {timeout} s") from None
            except OSError as error:
                raise AgentdConnectionError(path, _describe(error)) from None
            return cls(path, reader, writer)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    endpoint.host, endpoint.port, ssl=endpoint.context, server_hostname=endpoint.host,
                    limit=_READ_LIMIT,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise AgentdConnectionError(path, f"no connection and TLS handshake within {timeout} s") from None
        except OSError as error:  # ssl.SSLError included
            raise _endpoint.handshake_error(endpoint, error) from error
        connection = cls(path, reader, writer, tls=True)
        try:
            answer = await connection.request("Authenticate", {"token": endpoint.token}, timeout)
        except BaseException:
            await connection.aclose()  # a refused token: the daemon closes the connection too
            raise
        agent = answer.get("agent") if isinstance(answer, dict) else None
        connection.agent = agent if isinstance(agent, str) else None
        return connection

    def stale(self) -> bool:
        return self.closed or self._reader.at_eof() or self._writer.is_closing()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                if self.tls:
                    # As the sync client's close: no close_notify exchange, whose answer the
                    # daemon may never send; closing the TCP connection is what frees leases.
                    self._writer.transport.abort()
                else:
                    self._writer.close()
            except (OSError, RuntimeError):
                pass

    async def aclose(self, timeout: float = 1.0) -> None:
        """Closes and waits (up to ``timeout`` s) until the transport is closed, so that no
        socket outlives the event loop."""
        self.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), timeout)
            await asyncio.sleep(0)  # the socket under a TLS transport closes one turn later
        except (Exception, asyncio.CancelledError):
            pass

    async def request(self, method: str, params: Optional[Mapping[str, Any]], timeout: Optional[float]) -> Any:
        if self.closed:
            raise AgentdConnectionError(self.path, "connection closed")
        request_id = self._next_id
        self._next_id += 1
        line = _common.encode_request(request_id, method, params)
        try:
            self._writer.write(line)
            await self._writer.drain()
            raw = await asyncio.wait_for(self._reader.readuntil(b"\n"), timeout)
        except asyncio.TimeoutError:
            self.close()
            raise AgentdConnectionError(self.path, f"no answer to {method} within {timeout} s") from None
        except asyncio.IncompleteReadError:
            self.close()
            raise AgentdConnectionError(self.path, f"the daemon closed the connection during {method}") from None
        except (OSError, asyncio.LimitOverrunError) as error:
            self.close()
            raise AgentdConnectionError(self.path, f"connection lost during {method}: {_describe(error)}") from None
        except BaseException:
            self.close()  # cancelled mid-request: the late answer would be taken for the next one
            raise
        return _common.result_of(self.path, raw[:-1], request_id, method, self.close)


class _AsyncRenewer:
    """A task that awaits ``renew()`` every ``interval`` seconds; see the sync ``_Renewer``."""

    def __init__(
        self,
        interval: float,
        renew: Callable[[], Awaitable[None]],
        expires_at: Callable[[], float],
        on_refused: Callable[[BaseException], Awaitable[None]],
    ) -> None:
        self.interval = interval
        self._renew = renew
        self._expires_at = expires_at
        self._on_refused = on_refused
        self._stop = asyncio.Event()
        self.paused = False  # a test hook: while True, renewals are skipped
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not asyncio.current_task():
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def cancel(self) -> None:
        self._stop.set()
        self._task.cancel()

    async def _sleep(self, delay: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), delay)
            return True
        except asyncio.TimeoutError:
            return False

    async def _run(self) -> None:
        delay = self.interval
        while not await self._sleep(delay):
            delay = self.interval
            if self.paused:
                continue
            try:
                await self._renew()
            except AgentdError as error:
                if not self._stop.is_set():
                    await self._on_refused(error)
                return
            except AgentdConnectionError as error:
                if time.time() >= self._expires_at():
                    if not self._stop.is_set():
                        await self._on_refused(error)
                    return
                delay = min(self.interval, 0.5)


class AsyncClient:
    """The asyncio twin of :class:`agentd_client.Client`; same arguments (``tls://`` addresses,
    ``token``, ``token_file``, ``cafile`` and the environment included), same methods."""

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
        self._idle: List[_AsyncConnection] = []
        self._open: Set[_AsyncConnection] = set()
        self._holders: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._closed = False

    # -- connections ---------------------------------------------------------------

    async def _checkout(self) -> _AsyncConnection:
        if self._closed:
            raise AgentdConnectionError(self.path, "the client is closed")
        while self._idle:
            connection = self._idle.pop()
            if not connection.stale():
                return connection
            connection.close()
            self._open.discard(connection)
        connection = await _AsyncConnection.open(self._endpoint, self.timeout)
        if self._closed:
            connection.close()
            raise AgentdConnectionError(self.path, "the client is closed")
        self._open.add(connection)
        if connection.agent is not None:
            self.agent = connection.agent
        return connection

    def _checkin(self, connection: _AsyncConnection) -> None:
        if connection.closed or self._closed:
            connection.close()
            self._open.discard(connection)
        else:
            self._idle.append(connection)

    def _timeout(self, parked: float) -> Optional[float]:
        return None if self.timeout is None else self.timeout + parked

    async def _request(self, method: str, params: Optional[Mapping[str, Any]] = None, parked: float = 0.0) -> Any:
        connection = await self._checkout()
        try:
            return await connection.request(method, params, self._timeout(parked))
        finally:
            self._checkin(connection)

    async def _request_pinned(
        self, method: str, params: Mapping[str, Any], parked: float
    ) -> Tuple[Any, Optional[_AsyncConnection]]:
        connection = await self._checkout()
        try:
            result = await connection.request(method, params, self._timeout(parked))
        except BaseException:
            self._checkin(connection)
            raise
        if result is None:
            self._checkin(connection)
            return None, None
        return result, connection

    async def connect(self) -> "AsyncClient":
        """Opens a connection now (see :meth:`agentd_client.Client.connect`); returns the client."""
        self._checkin(await self._checkout())
        return self

    async def close(self) -> None:
        """Closes every connection (the daemon frees what this client held); renewals stop."""
        self._closed = True
        for holder in list(self._holders):
            holder._client_closed()
        connections = list(self._open)
        self._open.clear()
        self._idle.clear()
        for connection in connections:
            connection.close()
        if connections:
            await asyncio.gather(*(connection.aclose() for connection in connections))

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        agent = f", agent={self.agent!r}" if self.tls else ""
        return f"AsyncClient({self.path!r}, owner={self.owner!r}{agent})"

    # -- any method ----------------------------------------------------------------

    async def call(self, method: str, params: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> Any:
        merged = _common.merge_params(params, kwargs)
        return await self._request(method, merged, _common.parked_seconds(merged))

    async def health(self) -> Dict[str, Any]:
        return await self._request("Health")  # type: ignore[no-any-return]

    async def metrics(self) -> Dict[str, Any]:
        return await self._request("Metrics")  # type: ignore[no-any-return]

    async def describe_interface(self) -> Dict[str, Any]:
        return await self._request("DescribeInterface")  # type: ignore[no-any-return]

    # -- tasks ---------------------------------------------------------------------

    async def register_task(
        self, goal: str, nodes: Optional[Sequence[NodeDefinition]] = None, context: JSON = None
    ) -> str:
        params: Dict[str, Any] = {"goal": goal, "initial_nodes": list(nodes or [])}
        if context is not None:
            params["context"] = context
        return str((await self._request("RegisterTask", params))["task_id"])

    async def add_nodes(self, task_id: str, nodes: Sequence[NodeDefinition]) -> List[str]:
        return _common.node_ids(await self._request("AddNodes", {"task_id": task_id, "nodes": list(nodes)}))

    async def task_status(self, task_id: str) -> Dict[str, Any]:
        return await self._request("TaskStatus", {"task_id": task_id})  # type: ignore[no-any-return]

    async def retry_node(self, task_id: str, node_id: str) -> None:
        await self._request("RetryNode", {"task_id": task_id, "node_id": node_id})

    async def cancel_task(self, task_id: str) -> None:
        await self._request("CancelTask", {"task_id": task_id})

    async def delete_task(self, task_id: str) -> None:
        await self._request("DeleteTask", {"task_id": task_id})

    async def list_tasks(
        self, status: Optional[str] = None, limit: Optional[int] = None, after: Optional[str] = None
    ) -> Dict[str, Any]:
        return await self._request("ListTasks", _common.drop_none(status=status, limit=limit, after=after))  # type: ignore[no-any-return]

    # -- leases --------------------------------------------------------------------

    async def acquire_next(
        self,
        task_id: str,
        owner: Optional[str] = None,
        wait: Optional[float] = 0,
        lease_ttl: Optional[float] = None,
    ) -> Optional["AsyncLease"]:
        params, parked = _common.acquire_next_params(task_id, owner or self.owner, wait, lease_ttl)
        result, connection = await self._request_pinned("AcquireNextNode", params, parked)
        if result is None or connection is None:
            return None
        lease = AsyncLease(self, result, connection, None if lease_ttl is None else _common.ttl_secs(lease_ttl))
        self._holders.add(lease)
        return lease

    async def heartbeat_node(
        self, task_id: str, node_id: str, lease_id: str, lease_ttl: Optional[float] = None
    ) -> None:
        params: Dict[str, Any] = {"task_id": task_id, "node_id": node_id, "lease_id": lease_id}
        if lease_ttl is not None:
            params["lease_ttl_secs"] = _common.ttl_secs(lease_ttl)
        await self._request("HeartbeatNode", params)

    async def commit_event(
        self, task_id: str, node_id: str, lease_id: Optional[str], payload: JSON, action_type: str = "COMMIT_EVENT"
    ) -> str:
        params = _common.drop_none(task_id=task_id, node_id=node_id, lease_id=lease_id, action_type=action_type)
        params["payload"] = payload
        return str((await self._request("CommitEvent", params))["event_id"])

    async def complete_node(self, task_id: str, node_id: str, lease_id: str, result: JSON = None) -> str:
        params = {"task_id": task_id, "node_id": node_id, "lease_id": lease_id, "result_payload": result}
        return str((await self._request("CompleteNode", params))["event_id"])

    async def fail_node(self, task_id: str, node_id: str, lease_id: str, error: JSON = None) -> str:
        params = {"task_id": task_id, "node_id": node_id, "lease_id": lease_id, "error_payload": error}
        return str((await self._request("FailNode", params))["event_id"])

    # -- the journal ---------------------------------------------------------------

    async def read_events(
        self,
        task_id: str,
        after: int = 0,
        node_id: Optional[str] = None,
        limit: Optional[int] = None,
        wait: Optional[float] = 0,
    ) -> Dict[str, Any]:
        params, parked = _common.read_events_params(task_id, after, node_id, limit, wait)
        return await self._request("ReadEvents", params, parked)  # type: ignore[no-any-return]

    async def events(
        self,
        task_id: str,
        after: int = 0,
        *,
        node_id: Optional[str] = None,
        follow: bool = False,
        limit: int = 100,
        poll: float = 30.0,
    ) -> AsyncIterator[Dict[str, Any]]:
        seq = after
        while True:
            page = await self.read_events(task_id, seq, node_id, limit, poll if follow else 0)
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
        on_lost: Optional[Callable[["AsyncLock"], Any]] = None,
    ) -> "AsyncLock":
        """An :class:`AsyncLock` (not yet acquired: ``async with`` or ``await acquire()``)."""
        return AsyncLock(
            self, key, ttl=ttl, wait=wait, owner=owner, provider=provider, metadata=metadata,
            task_id=task_id, node_id=node_id, renew=renew, on_lost=on_lost,
        )

    async def locks(self, prefix: Optional[str] = None) -> List[Dict[str, Any]]:
        params = None if prefix is None else {"prefix": prefix}
        return list((await self._request("ListResourceLocks", params))["locks"])

    # -- the worker loop -------------------------------------------------------------

    async def work(
        self,
        task_id: str,
        fn: Callable[["AsyncLease"], Union[JSON, Awaitable[JSON]]],
        owner: Optional[str] = None,
        wait: float = 30.0,
        lease_ttl: Optional[float] = None,
    ) -> int:
        """The worker loop of :meth:`Client.work`; ``fn`` may be a coroutine function.

        A plain function runs on the event loop: one that blocks should be wrapped, e.g.
        ``lambda lease: asyncio.to_thread(job, lease)``. Cancelling the task running
        ``work`` gives the current node back (its lease ends at once).
        """
        ran = 0
        while True:
            try:
                lease = await self.acquire_next(task_id, owner, wait, lease_ttl)
            except TaskClosed:
                return ran
            if lease is None:
                if not _common.task_is_active(await self.task_status(task_id)):
                    return ran
                continue
            ran += 1
            await lease._run(fn)


class AsyncLease:
    """The asyncio twin of :class:`agentd_client.Lease` (``async with lease:``)."""

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

    def __init__(
        self, client: AsyncClient, result: Mapping[str, Any], connection: _AsyncConnection, lease_ttl: Optional[int]
    ) -> None:
        self._client = client
        self.raw: Dict[str, Any] = dict(result)
        for key, value in _common.lease_fields(result).items():
            setattr(self, key, value)
        self._connection: Optional[_AsyncConnection] = connection
        # A lease dropped unfinished gives its node back: its connection closes.
        self._finalizer = weakref.finalize(self, _drop_pinned, client, connection)
        self._lease_ttl = lease_ttl
        self._ttl = lease_ttl if lease_ttl is not None else max(1, int(self.expires_at - time.time()))
        self._renewer: Optional[_AsyncRenewer] = None
        self.done = False
        self.lost: Optional[BaseException] = None

    def _take_connection(self) -> Any:
        """The pinned connection, now the caller's to close or return to the pool."""
        connection, self._connection = self._connection, None
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        return connection

    def __repr__(self) -> str:
        return f"AsyncLease(task_id={self.task_id!r}, node_id={self.node_id!r}, name={self.name!r}, done={self.done})"

    async def heartbeat(self, ttl: Optional[float] = None) -> None:
        ttl_int = _common.ttl_secs(ttl) if ttl is not None else self._lease_ttl
        await self._client.heartbeat_node(self.task_id, self.node_id, self.lease_id, ttl_int)
        self.expires_at = _common.deadline_after(ttl_int if ttl_int is not None else self._ttl)

    async def commit_event(self, payload: JSON, action_type: str = "COMMIT_EVENT") -> str:
        return await self._client.commit_event(self.task_id, self.node_id, self.lease_id, payload, action_type)

    async def complete(self, result: JSON = None) -> str:
        return await self._finish(self._client.complete_node(self.task_id, self.node_id, self.lease_id, result))

    async def fail(self, error: JSON = None) -> str:
        return await self._finish(self._client.fail_node(self.task_id, self.node_id, self.lease_id, error))

    async def abandon(self) -> None:
        """Gives the node back now (see :meth:`agentd_client.Lease.abandon`)."""
        await self._stop_heartbeat()
        self._give_back()

    def _give_back(self) -> None:
        self.done = True
        connection = self._take_connection()
        if connection is not None:
            connection.close()
            self._client._checkin(connection)

    async def _finish(self, send: Awaitable[str]) -> str:
        await self._stop_heartbeat()
        try:
            event_id = await send
        except (TypeError, ValueError):
            raise  # not JSON: nothing was sent
        except BaseException:
            self.done = True
            self._release_connection()
            raise
        self.done = True
        self._release_connection()
        return event_id

    def _release_connection(self) -> None:
        connection = self._take_connection()
        if connection is not None:
            self._client._checkin(connection)

    def start_heartbeat(self, interval: Optional[float] = None) -> None:
        """Heartbeats in a background task every ``interval`` s (default a third of the TTL)."""
        if self._renewer is not None or self.done:
            return
        self._renewer = _AsyncRenewer(
            interval if interval is not None else self._ttl / 3.0,
            self.heartbeat,
            lambda: float(self.expires_at),
            self._on_refused,
        )

    async def _on_refused(self, error: BaseException) -> None:
        log.warning("lease %s on node %s of task %s lost: %s", self.lease_id, self.node_id, self.task_id, error)
        self.lost = error

    async def _stop_heartbeat(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            await renewer.stop()

    def _client_closed(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
        self.done = True
        self._take_connection()

    async def __aenter__(self) -> "AsyncLease":
        self.start_heartbeat()
        return self

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        await self._stop_heartbeat()
        if self.done:
            self._release_connection()
            return
        if exc is None:
            await self.complete(None)
        elif isinstance(exc, Exception):
            try:
                await self.fail(_common.error_payload(exc))
            except (AgentdError, AgentdConnectionError):
                pass
        else:
            self._give_back()

    async def _run(self, fn: Callable[["AsyncLease"], Any]) -> None:
        self.start_heartbeat()
        try:
            result = await _maybe_await(fn(self))
        except Exception as error:
            await self._stop_heartbeat()
            if not self.done:
                try:
                    await self.fail(_common.error_payload(error))
                except (AgentdError, AgentdConnectionError) as refused:
                    log.warning("could not fail node %s after %r: %s", self.node_id, error, refused)
                    self._release_connection()
            return
        except BaseException:
            renewer, self._renewer = self._renewer, None
            if renewer is not None:
                renewer.cancel()
            self._give_back()
            raise
        await self._stop_heartbeat()
        if self.done:
            self._release_connection()
            return
        try:
            await self.complete(result)
        except (TypeError, ValueError) as error:
            await self.fail(_common.error_payload(error))
        except (AgentdError, AgentdConnectionError) as refused:
            log.warning("could not complete node %s: %s", self.node_id, refused)
            self._release_connection()


class AsyncLock:
    """The asyncio twin of :class:`agentd_client.Lock` (``async with c.lock(...) as lk:``).

    ``on_lost`` may be a plain function or a coroutine function.
    """

    def __init__(
        self,
        client: AsyncClient,
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
        on_lost: Optional[Callable[["AsyncLock"], Any]] = None,
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
        self.lease_id: Optional[str] = None
        self.fencing_token: Optional[int] = None
        self.expires_at: Optional[int] = None
        self.lost: Optional[LockLost] = None
        self._lost_reported = False
        self._connection: Optional[_AsyncConnection] = None
        self._renewer: Optional[_AsyncRenewer] = None

    def _take_connection(self) -> Any:
        """The pinned connection, now the caller's to close or return to the pool."""
        connection, self._connection = self._connection, None
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        return connection

    def __repr__(self) -> str:
        return f"AsyncLock({self.key!r}, held={self.held}, fencing_token={self.fencing_token})"

    @property
    def held(self) -> bool:
        return self._connection is not None and self.lost is None

    async def acquire(self, wait: Optional[float] = _UNSET) -> bool:
        if self._connection is not None:
            raise RuntimeError(f"lock {self.key!r} is already held by this AsyncLock object")
        wait = self.wait if wait is _UNSET else wait
        params, parked = _common.acquire_lock_params(
            self.key, self._owner, self.ttl, wait, self.provider, self.metadata, self.task_id, self.node_id
        )
        result, connection = await self._client._request_pinned("AcquireResourceLock", params, parked)
        if result is None or connection is None:
            return False
        self._connection = connection
        self.owner = result.get("owner", self._owner)
        self._finalizer = weakref.finalize(self, _drop_pinned, self._client, connection)
        self.info = result
        self.lease_id = result["lease_id"]
        self.fencing_token = result.get("fencing_token")
        self.expires_at = int(result["lease_expires_at"])
        self.lost = None
        self._lost_reported = False
        self._client._holders.add(self)
        if self.renew:
            self._renewer = _AsyncRenewer(
                self.ttl / 3.0, self._renew, lambda: float(self.expires_at or 0), self._on_refused
            )
        return True

    async def _renew(self) -> None:
        await self._heartbeat(self.ttl)

    async def _heartbeat(self, ttl: int) -> None:
        if self.lease_id is None:
            return
        await self._client._request(
            "HeartbeatResourceLock", {"resource_key": self.key, "lease_id": self.lease_id, "ttl_secs": ttl}
        )
        self.expires_at = _common.deadline_after(ttl)

    async def _on_refused(self, error: BaseException) -> None:
        if self.lost is not None or self._connection is None:
            return
        self.lost = self._lost_error(error)
        log.warning("%s", self.lost)
        if self.on_lost is not None:
            await self._report_lost()

    def _lost_error(self, error: BaseException) -> LockLost:
        lost = LockLost(
            f"lock {self.key} (fencing token {self.fencing_token}) was lost: {error}",
            data={"resource_key": self.key, "lease_id": self.lease_id, "fencing_token": self.fencing_token},
        )
        lost.__cause__ = error
        return lost

    async def _report_lost(self) -> None:
        if self._lost_reported or self.lost is None:
            return
        self._lost_reported = True
        if self.on_lost is not None:
            await _maybe_await(self.on_lost(self))
        else:
            raise self.lost

    async def extend(self, ttl: Optional[float] = None) -> None:
        if self._connection is None:
            raise RuntimeError(f"lock {self.key!r} is not held")
        if self.lost is not None:
            await self._report_lost()
            return
        try:
            await self._heartbeat(self.ttl if ttl is None else _common.ttl_secs(ttl))
        except AgentdError as error:
            self.lost = self._lost_error(error)
            await self._report_lost()

    async def release(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            await renewer.stop()
        connection = self._take_connection()
        if connection is None:
            if self.lost is not None:
                await self._report_lost()
                return
            raise RuntimeError(f"lock {self.key!r} is not held")
        try:
            if self.lost is None and self.lease_id is not None:
                try:
                    await self._client._request(
                        "ReleaseResourceLock", {"resource_key": self.key, "lease_id": self.lease_id}
                    )
                except AgentdError as error:
                    self.lost = self._lost_error(error)
                except AgentdConnectionError:
                    connection.close()
        finally:
            self._client._checkin(connection)
        await self._report_lost()

    def _client_closed(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
        self._take_connection()

    async def __aenter__(self) -> "AsyncLock":
        if not await self.acquire():
            raise LockNotAcquired(
                f"lock {self.key} is held by another owner"
                + ("" if self.wait is None else f" (waited {self.wait} s)"),
                data={"resource_key": self.key},
            )
        return self

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        if exc is None:
            await self.release()
            return
        try:
            await self.release()
        except (LockLost, AgentdError, AgentdConnectionError):
            pass
