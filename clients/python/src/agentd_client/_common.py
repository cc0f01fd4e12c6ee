"""What the sync and the asyncio client share: framing, params, and small rules."""

from __future__ import annotations

import json
import math
import os
import socket
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from .errors import AgentdConnectionError, RequestTooLarge, error_from_answer

MAX_LINE = 1_048_576
"""The daemon's limit on one request line, counting its newline."""

MAX_DURATION_SECS = 10 * 365 * 86_400
"""The daemon refuses durations (``wait_ms``, ``ttl_secs``) longer than ten years."""

JSON = Any
NodeDefinition = Mapping[str, Any]

_UNSET: Any = object()


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


def acquire_next_params(
    task_id: str, owner: Optional[str], wait: Optional[float], lease_ttl: Optional[float]
) -> Tuple[Dict[str, Any], float]:
    """An owner of ``None`` is left out: the daemon then names the lease (over TLS, after the
    authenticated agent)."""
    params: Dict[str, Any] = {"task_id": task_id, "release_on_disconnect": True}
    if owner is not None:
        params["lease_owner"] = owner
    parked = 0.0
    if wait is None or wait > 0:
        params["wait_ms"] = wait_ms(wait)
        parked = params["wait_ms"] / 1000.0
    if lease_ttl is not None:
        params["lease_ttl_secs"] = ttl_secs(lease_ttl)
    return params, parked


def acquire_lock_params(
    key: str,
    owner: Optional[str],
    ttl: int,
    wait: Optional[float],
    provider: Optional[str],
    metadata: Any,
    task_id: Optional[str],
    node_id: Optional[str],
) -> Tuple[Dict[str, Any], float]:
    params: Dict[str, Any] = {"resource_key": key, "ttl_secs": ttl, "release_on_disconnect": True}
    params.update(drop_none(owner=owner, provider=provider, metadata=metadata, task_id=task_id, node_id=node_id))
    parked = 0.0
    if wait is None or wait > 0:
        params["wait_ms"] = wait_ms(wait)
        parked = params["wait_ms"] / 1000.0
    return params, parked


def read_events_params(
    task_id: str, after: int, node_id: Optional[str], limit: Optional[int], wait: Optional[float]
) -> Tuple[Dict[str, Any], float]:
    params = drop_none(task_id=task_id, after_seq=after, node_id=node_id, limit=limit)
    parked = 0.0
    if wait is None or wait > 0:
        params["wait_ms"] = wait_ms(wait)
        parked = params["wait_ms"] / 1000.0
    return params, parked


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


def node_ids(result: Mapping[str, Any]) -> List[str]:
    return list(result["node_ids"])
