"""Finding the daemon's socket the way the daemon itself does.

The daemon reads ``AGENTD_HOME`` (default ``~/.agentd``), then the env file
(``AGENTD_ENV_FILE``, default ``$AGENTD_HOME/.env``) for settings the process environment
does not have, then ``AGENTD_SOCKET_PATH`` (default ``$AGENTD_HOME/agentd.sock``).
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional


def read_env_file(path: str) -> Dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments, blank lines, ``export `` and quotes allowed."""
    result: Dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except OSError:
        return result
    for raw in lines:
        text = raw.strip(" \t\r\n")
        if not text or text.startswith("#"):
            continue
        if text.startswith("export "):
            text = text[len("export ") :].strip(" \t\r\n")
        if "=" not in text:
            continue
        key, value = text.split("=", 1)
        key, value = key.strip(" \t\r\n"), value.strip(" \t\r\n")
        if len(value) >= 2 and value[0] in "\"'" and value[-1] == value[0]:
            value = value[1:-1]
        result[key] = value
    return result


def _expand_tilde(path: str, user_home: str) -> str:
    if path == "~":
        return user_home
    if path.startswith("~/"):
        return user_home + path[1:]
    return path


def agentd_environment(environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment as the daemon and its command line see it: the process environment
    (``os.environ`` by default) merged over the env file (``AGENTD_ENV_FILE``, default
    ``$AGENTD_HOME/.env``); the process environment wins."""
    env: Dict[str, str] = dict(os.environ if environ is None else environ)
    user_home = env.get("HOME") or os.path.expanduser("~")
    default_home = user_home + "/.agentd"
    env_file = env.get("AGENTD_ENV_FILE") or (env.get("AGENTD_HOME") or default_home) + "/.env"
    for key, value in read_env_file(env_file).items():
        env.setdefault(key, value)  # the process environment wins over the file
    return env


def expand_tilde(path: str, environ: Optional[Mapping[str, str]] = None) -> str:
    """``~`` and ``~/...`` against ``HOME`` (of ``environ``, default ``os.environ``)."""
    env = os.environ if environ is None else environ
    return _expand_tilde(path, env.get("HOME") or os.path.expanduser("~"))


def default_socket_path(environ: Optional[Mapping[str, str]] = None) -> str:
    """The socket path the daemon would use with this environment (``os.environ`` by default)."""
    env = agentd_environment(environ)
    user_home = env.get("HOME") or os.path.expanduser("~")
    home = _expand_tilde(env.get("AGENTD_HOME") or user_home + "/.agentd", user_home)
    socket_path = env.get("AGENTD_SOCKET_PATH")
    if socket_path:
        return _expand_tilde(socket_path, user_home)
    return home + "/agentd.sock"
