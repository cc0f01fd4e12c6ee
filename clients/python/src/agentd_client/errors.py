"""The exceptions this package raises.

The daemon answers a refused request with ``{"error": {"code", "message", "data": {"reason"}}}``.
:class:`AgentdError` carries those three; each stable ``reason`` has its own subclass, so
callers can write ``except TaskNotFound`` instead of comparing strings. An answer from a
daemon that sends no reason (the Rust original) still maps to the right subclass, from its
code and the original's message texts.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type


class AgentdError(Exception):
    """A request the daemon refused, or a client-side failure of a lock.

    ``code`` is the JSON-RPC code (-32000 for a refusal by the state), ``reason`` the stable
    ``error.data.reason`` (``None`` when the daemon sent none, and for the client-side
    :class:`LockNotAcquired` and :class:`LockLost`), ``message`` the daemon's text and
    ``data`` the whole ``error.data`` object.
    """

    def __init__(
        self,
        message: str,
        *,
        code: Optional[int] = None,
        reason: Optional[str] = None,
        data: Optional[Dict[str, Any]] = None,
        method: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.data = data or {}
        self.method = method

    def __str__(self) -> str:
        parts = [self.message]
        if self.reason:
            parts.append(f"[{self.reason}]")
        if self.method:
            parts.append(f"(in {self.method})")
        return " ".join(parts)


class TaskNotFound(AgentdError):
    """TASK_NOT_FOUND: no task has that id (never registered, or deleted)."""


class NodeNotFound(AgentdError):
    """NODE_NOT_FOUND: the task has no node with that id."""


class NodeNotRunning(AgentdError):
    """NODE_NOT_RUNNING: the node is not RUNNING under that lease (expired, completed, failed)."""


class LeaseMismatch(AgentdError):
    """LEASE_MISMATCH: the node is RUNNING under another lease than the one given."""


class LockNotHeld(AgentdError):
    """LOCK_NOT_HELD: the resource lock is not held under that lease (expired or moved on)."""


class InvalidDag(AgentdError):
    """INVALID_DAG: duplicate ids or names, a self-dependency, an unknown dependency, a cycle."""


class TaskClosed(AgentdError):
    """TASK_CLOSED: the task was cancelled (or, for DeleteTask, is still ACTIVE)."""


class InvalidParams(AgentdError):
    """INVALID_PARAMS: a parameter is missing or of the wrong type."""


class ParseError(AgentdError):
    """PARSE_ERROR: the line was not a JSON object with a string ``method``."""


class InvalidRequest(AgentdError):
    """INVALID_REQUEST: the request is malformed in a way other than its params."""


class UnknownMethod(AgentdError):
    """UNKNOWN_METHOD: the daemon has no method of that name."""


class RequestTooLarge(AgentdError):
    """REQUEST_TOO_LARGE: the request line is longer than 1,048,576 bytes.

    The client refuses such a request itself before sending it (the daemon would close the
    connection after answering).
    """


class Unauthenticated(AgentdError):
    """UNAUTHENTICATED: a network connection has not sent a valid ``Authenticate`` yet."""


class LockNotAcquired(AgentdError):
    """Client-side: the lock was still held by another owner when ``wait`` ran out."""


class LockLost(AgentdError):
    """Client-side: a lock this client held was taken away.

    Raised when a renewal or the release is refused because the lock expired (and may have
    been granted to another owner), or when the daemon could not be reached to renew it
    before it expired.
    """


class AgentdConnectionError(ConnectionError):
    """The daemon's socket could not be reached, or the connection broke mid-request.

    ``path`` names the socket (or address) the client tried.
    """

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"agentd at {path}: {detail}")
        self.path = path
        self.detail = detail


REASONS: Dict[str, Type[AgentdError]] = {
    "TASK_NOT_FOUND": TaskNotFound,
    "NODE_NOT_FOUND": NodeNotFound,
    "NODE_NOT_RUNNING": NodeNotRunning,
    "LEASE_MISMATCH": LeaseMismatch,
    "LOCK_NOT_HELD": LockNotHeld,
    "INVALID_DAG": InvalidDag,
    "TASK_CLOSED": TaskClosed,
    "INVALID_PARAMS": InvalidParams,
    "PARSE_ERROR": ParseError,
    "INVALID_REQUEST": InvalidRequest,
    "UNKNOWN_METHOD": UnknownMethod,
    "REQUEST_TOO_LARGE": RequestTooLarge,
    "UNAUTHENTICATED": Unauthenticated,
}

_BY_CODE: Dict[int, Type[AgentdError]] = {
    -32700: ParseError,
    -32601: UnknownMethod,
    -32602: InvalidParams,
    -32001: RequestTooLarge,
}


def _class_from_message(message: str) -> Type[AgentdError]:
    """The subclass for a -32000 answer without a reason (the original's message texts)."""
    if message.startswith("task not found"):
        return TaskNotFound
    if message.startswith("node not found"):
        return NodeNotFound
    if "cannot transition from RUNNING " in message or "requires the current RUNNING lease" in message:
        return LeaseMismatch
    if "is not RUNNING" in message or "cannot transition from" in message:
        return NodeNotRunning
    if message.startswith("invalid state: task ") and ("is CANCELLED" in message or "is ACTIVE" in message):
        return TaskClosed
    if message.startswith("invalid state: resource lock"):
        return LockNotHeld
    if (
        "duplicate node" in message
        or "cannot depend on itself" in message
        or "depends on unknown node" in message
        or "cycle detected" in message
    ):
        return InvalidDag
    return AgentdError


def error_from_answer(error: Any, method: Optional[str] = None) -> AgentdError:
    """The exception for the ``error`` member of an answer."""
    if not isinstance(error, dict):
        return AgentdError(f"malformed error answer: {error!r}", method=method)
    message = str(error.get("message", ""))
    code = error.get("code")
    data = error.get("data")
    reason = data.get("reason") if isinstance(data, dict) else None
    cls: Type[AgentdError]
    if isinstance(reason, str) and reason in REASONS:
        cls = REASONS[reason]
    elif isinstance(code, int) and code in _BY_CODE:
        cls = _BY_CODE[code]
    else:
        cls = _class_from_message(message)
    return cls(
        message,
        code=code if isinstance(code, int) else None,
        reason=reason if isinstance(reason, str) else None,
        data=data if isinstance(data, dict) else None,
        method=method,
    )
