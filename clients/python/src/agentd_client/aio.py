"""The asyncio client: :class:`AsyncClient`, :class:`AsyncLock` and :class:`AsyncLease`.

The same surface as the sync client with ``await`` and ``async with``, and the same
connection rules: a pool of connections, one request at a time on each (no pipelining), so
a parked call never delays another task's heartbeat; what it takes is taken with
``release_on_disconnect`` on a connection kept for that lease or lock. An ``AsyncClient``
belongs to the event loop it is first used on; it is not for use from other threads.

The logic is ``_core``'s, shared with the sync client; this module has the streams and the
tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    ContextManager,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    cast,
)

from . import _core, _endpoint
from ._core import JSON, NodeDefinition, _UNSET, Call, Flow
from ._endpoint import Endpoint
from .errors import AgentdConnectionError

__all__ = ["AsyncClient", "AsyncLock", "AsyncLease"]

T = TypeVar("T")

_READ_LIMIT = 1 << 30  # answers (a big TaskStatus) may be far longer than a request line


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _drive(flow: Flow[T]) -> T:
    """Runs a flow of ``_core`` on the event loop: each step it yields is called (and its
    result awaited when it is awaitable), and the result sent back into the flow or the
    exception thrown back in."""
    outcome: Any = None
    failure: Optional[BaseException] = None
    while True:
        try:
            step = flow.send(outcome) if failure is None else flow.throw(failure)
        except StopIteration as stop:
            return cast(T, stop.value)
        try:
            outcome, failure = await _maybe_await(step()), None
        except BaseException as error:
            outcome, failure = None, error


class _AsyncConnection(_core.ConnectionCore):
    def __init__(
        self, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: bool = False
    ) -> None:
        super().__init__(path)
        self.tls = tls
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, endpoint: Endpoint, timeout: Optional[float]) -> "_AsyncConnection":
        """A connection to the endpoint; over TLS, handshaken and authenticated."""
        path = endpoint.address
        if not endpoint.tls:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path, limit=_READ_LIMIT), timeout)
            except asyncio.TimeoutError:
                raise _core.no_connection(path, timeout) from None
            except OSError as error:
                raise AgentdConnectionError(path, _core.describe(error)) from None
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
            raise _core.no_connection(path, timeout, "connection and TLS handshake") from None
        except OSError as error:  # ssl.SSLError included
            raise _endpoint.handshake_error(endpoint, error) from error
        connection = cls(path, reader, writer, tls=True)
        authenticate = _core.authenticate(endpoint.token)
        try:
            connection.agent = authenticate.read(await connection.request(authenticate, timeout))
        except BaseException:
            await connection.aclose()  # a refused token: the daemon closes the connection too
            raise
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

    async def request(self, call: Call[Any], timeout: Optional[float]) -> Any:
        """Sends ``call`` and returns the result of its answer (not yet read by ``call.read``)."""
        request_id, line = self._frame(call)
        try:
            self._writer.write(line)
            await self._writer.drain()
            raw = await asyncio.wait_for(self._reader.readuntil(b"\n"), timeout)
        except asyncio.TimeoutError:
            self.close()
            raise _core.no_answer(self.path, call.method, timeout) from None
        except asyncio.IncompleteReadError:
            self.close()
            raise AgentdConnectionError(self.path, f"the daemon closed the connection during {call.method}") from None
        except (OSError, asyncio.LimitOverrunError) as error:
            self.close()
            raise _core.lost_during(self.path, call.method, error) from None
        except BaseException:
            self.close()  # cancelled mid-request: the late answer would be taken for the next one
            raise
        return self._answer(raw[:-1], request_id, call)


class _AsyncRenewer(_core.RenewerCore):
    """A task that awaits ``renew()`` every ``interval`` seconds (the rules are
    ``_core.RenewerCore``'s). ``renew`` and ``on_refused`` may be coroutine functions."""

    def _start(self) -> None:
        self._stop = asyncio.Event()
        self.paused = False  # a test hook: while True, renewals are skipped
        self._task = asyncio.ensure_future(_drive(self._flow()))

    async def stop(self) -> None:
        """Stops the renewals; waits for one in progress (unless called from the renewal)."""
        self._stop.set()
        if self._task is not asyncio.current_task():
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def halt(self) -> None:
        self._stop.set()
        self._task.cancel()

    async def _sleep(self, delay: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), delay)
            return True
        except asyncio.TimeoutError:
            return False

    def _stopped(self) -> bool:
        return self._stop.is_set()

    def _paused(self) -> bool:
        return self.paused


class AsyncClient(_core.ClientCore[_AsyncConnection, "AsyncLock"]):
    """The asyncio twin of :class:`agentd_client.Client`; same arguments (``tls://`` addresses,
    ``token``, ``token_file``, ``cafile`` and the environment included), same methods."""

    _name = "AsyncClient"

    @staticmethod
    def _new_mutex() -> ContextManager[Any]:
        return contextlib.nullcontext()  # one event loop: nothing runs between two awaits

    # -- connections ---------------------------------------------------------------

    async def _checkout(self) -> _AsyncConnection:
        return self._pooled() or self._opened(await _AsyncConnection.open(self._endpoint, self.timeout))

    async def _request(self, call: Call[T]) -> T:
        connection = await self._checkout()
        try:
            return call.read(await connection.request(call, self._timeout(call.parked)))
        finally:
            self._checkin(connection)

    async def _request_pinned(self, call: Call[Any]) -> Tuple[Any, Optional[_AsyncConnection]]:
        connection = await self._checkout()
        try:
            result = call.read(await connection.request(call, self._timeout(call.parked)))
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
        connections = self._close_all()
        if connections:
            await asyncio.gather(*(connection.aclose() for connection in connections))

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- any method ----------------------------------------------------------------

    async def call(self, method: str, params: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> Any:
        return await self._request(_core.any_method(method, params, kwargs))

    async def health(self) -> Dict[str, Any]:
        return await self._request(_core.health())

    async def metrics(self) -> Dict[str, Any]:
        return await self._request(_core.metrics())

    async def describe_interface(self) -> Dict[str, Any]:
        return await self._request(_core.describe_interface())

    # -- tasks ---------------------------------------------------------------------

    async def register_task(
        self, goal: str, nodes: Optional[Sequence[NodeDefinition]] = None, context: JSON = None
    ) -> str:
        return await self._request(_core.register_task(goal, nodes, context))

    async def add_nodes(self, task_id: str, nodes: Sequence[NodeDefinition]) -> List[str]:
        return await self._request(_core.add_nodes(task_id, nodes))

    async def task_status(self, task_id: str) -> Dict[str, Any]:
        return await self._request(_core.task_status(task_id))

    async def retry_node(self, task_id: str, node_id: str) -> None:
        await self._request(_core.retry_node(task_id, node_id))

    async def cancel_task(self, task_id: str) -> None:
        await self._request(_core.cancel_task(task_id))

    async def delete_task(self, task_id: str) -> None:
        await self._request(_core.delete_task(task_id))

    async def list_tasks(
        self, status: Optional[str] = None, limit: Optional[int] = None, after: Optional[str] = None
    ) -> Dict[str, Any]:
        return await self._request(_core.list_tasks(status, limit, after))

    # -- leases --------------------------------------------------------------------

    async def acquire_next(
        self,
        task_id: str,
        owner: Optional[str] = None,
        wait: Optional[float] = 0,
        lease_ttl: Optional[float] = None,
    ) -> Optional["AsyncLease"]:
        call = _core.acquire_next(task_id, owner or self.owner, wait, lease_ttl)
        result, connection = await self._request_pinned(call)
        if result is None or connection is None:
            return None
        return self._hold(AsyncLease(self, result, connection, lease_ttl))

    async def heartbeat_node(
        self, task_id: str, node_id: str, lease_id: str, lease_ttl: Optional[float] = None
    ) -> None:
        await self._request(_core.heartbeat_node(task_id, node_id, lease_id, lease_ttl))

    async def commit_event(
        self, task_id: str, node_id: str, lease_id: Optional[str], payload: JSON, action_type: str = "COMMIT_EVENT"
    ) -> str:
        return await self._request(_core.commit_event(task_id, node_id, lease_id, payload, action_type))

    async def complete_node(self, task_id: str, node_id: str, lease_id: str, result: JSON = None) -> str:
        return await self._request(_core.complete_node(task_id, node_id, lease_id, result))

    async def fail_node(self, task_id: str, node_id: str, lease_id: str, error: JSON = None) -> str:
        return await self._request(_core.fail_node(task_id, node_id, lease_id, error))

    # -- the journal ---------------------------------------------------------------

    async def read_events(
        self,
        task_id: str,
        after: int = 0,
        node_id: Optional[str] = None,
        limit: Optional[int] = None,
        wait: Optional[float] = 0,
    ) -> Dict[str, Any]:
        return await self._request(_core.read_events(task_id, after, node_id, limit, wait))

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
        pages = _core.EventPages(task_id, after, node_id, follow, limit, poll)
        while pages.more:
            for event in pages.events(await self.read_events(*pages.next_page)):
                yield event

    # -- locks ---------------------------------------------------------------------

    def _new_lock(self, key: str, **options: Any) -> "AsyncLock":
        return AsyncLock(self, key, **options)

    async def locks(self, prefix: Optional[str] = None) -> List[Dict[str, Any]]:
        return await self._request(_core.list_locks(prefix))

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
        return await _drive(self._work_flow(task_id, fn, owner, wait, lease_ttl))


class AsyncLease(_core.LeaseCore):
    """The asyncio twin of :class:`agentd_client.Lease` (``async with lease:``)."""

    _name = "AsyncLease"
    _client: AsyncClient
    _renewer: Optional[_AsyncRenewer] = None

    async def heartbeat(self, ttl: Optional[float] = None) -> None:
        await _drive(self._heartbeat_flow(ttl))

    async def commit_event(self, payload: JSON, action_type: str = "COMMIT_EVENT") -> str:
        return await self._client.commit_event(self.task_id, self.node_id, self.lease_id, payload, action_type)

    async def complete(self, result: JSON = None) -> str:
        return await _drive(self._complete_flow(result))

    async def fail(self, error: JSON = None) -> str:
        return await _drive(self._fail_flow(error))

    async def abandon(self) -> None:
        """Gives the node back now (see :meth:`agentd_client.Lease.abandon`)."""
        await _drive(self._abandon_flow())

    def _new_renewer(self, interval: float) -> _AsyncRenewer:
        return _AsyncRenewer(interval, self.heartbeat, self._deadline, self._mark_lost)

    async def __aenter__(self) -> "AsyncLease":
        self.start_heartbeat()
        return self

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        await _drive(self._exit_flow(exc))

    async def _run(self, fn: Callable[["AsyncLease"], Any]) -> None:
        await _drive(self._run_flow(fn))


class AsyncLock(_core.LockCore["AsyncLock"]):
    """The asyncio twin of :class:`agentd_client.Lock` (``async with c.lock(...) as lk:``).

    ``on_lost`` may be a plain function or a coroutine function.
    """

    _name = "AsyncLock"
    _client: AsyncClient
    _renewer: Optional[_AsyncRenewer] = None

    async def acquire(self, wait: Optional[float] = _UNSET) -> bool:
        return await _drive(self._acquire_flow(wait))

    def _new_renewer(self, interval: float) -> _AsyncRenewer:
        return _AsyncRenewer(interval, self._renew, self._deadline, self._on_refused)

    async def _renew(self) -> None:
        await _drive(self._heartbeat_flow(self.ttl))

    async def _on_refused(self, error: BaseException) -> None:
        if self._mark_lost(error):
            await self._report_lost()

    async def _report_lost(self) -> None:
        if self._claim_report() and self.on_lost is not None:
            await _maybe_await(self.on_lost(self))

    async def extend(self, ttl: Optional[float] = None) -> None:
        await _drive(self._extend_flow(ttl))

    async def release(self) -> None:
        await _drive(self._release_flow())

    async def __aenter__(self) -> "AsyncLock":
        if not await self.acquire():
            raise self._not_acquired()
        return self

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        await _drive(self._exit_flow(exc))
