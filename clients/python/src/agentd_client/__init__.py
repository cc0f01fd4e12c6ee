"""agentd_client: a Python client of the agentd daemon (sync and asyncio).

    from agentd_client import Client
    c = Client()
    with c.lock("file:src/lib.rs", ttl=30, wait=10) as lk:
        ...
"""

from .aio import AsyncClient, AsyncLease, AsyncLock
from .client import Client, Lease, Lock
from .discovery import default_socket_path
from .errors import (
    AgentdConnectionError,
    AgentdError,
    InvalidDag,
    InvalidParams,
    InvalidRequest,
    LeaseMismatch,
    LockLost,
    LockNotAcquired,
    LockNotHeld,
    NodeNotFound,
    NodeNotRunning,
    ParseError,
    REASONS,
    RequestTooLarge,
    TaskClosed,
    TaskNotFound,
    Unauthenticated,
    UnknownMethod,
)

__version__ = "0.1.0"

__all__ = [
    "AgentdConnectionError",
    "AgentdError",
    "AsyncClient",
    "AsyncLease",
    "AsyncLock",
    "Client",
    "InvalidDag",
    "InvalidParams",
    "InvalidRequest",
    "Lease",
    "LeaseMismatch",
    "Lock",
    "LockLost",
    "LockNotAcquired",
    "LockNotHeld",
    "NodeNotFound",
    "NodeNotRunning",
    "ParseError",
    "REASONS",
    "RequestTooLarge",
    "TaskClosed",
    "TaskNotFound",
    "Unauthenticated",
    "UnknownMethod",
    "default_socket_path",
]
