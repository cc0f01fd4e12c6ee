"""Where a client connects: a Unix socket, or ``tls://HOST:PORT`` with a token and a CA file.

The rules are the command line's: an explicit address wins; without one, ``AGENTD_CONNECT``
(``tls://HOST:PORT``, ``unix://PATH`` or a path) if it is set, else the Unix socket the daemon
would use. Over TLS the token comes from ``token``, else ``token_file``, else the file named by
``AGENTD_TOKEN_FILE`` (the bare token; surrounding whitespace is ignored), and the CA file from
``cafile``, else ``AGENTD_CA_FILE``, else the system's CAs. The environment is the process
environment merged over the env file, as for the socket path.
"""

from __future__ import annotations

import socket
import ssl
from typing import Mapping, Optional, Tuple

from .discovery import agentd_environment, default_socket_path, expand_tilde
from .errors import AgentdConnectionError


class Endpoint:
    """A resolved address. ``address`` names it in errors (a socket path or ``tls://HOST:PORT``);
    ``host`` is ``None`` for a Unix socket."""

    __slots__ = ("address", "host", "port", "token", "cafile", "context")

    def __init__(
        self,
        address: str,
        host: Optional[str] = None,
        port: Optional[int] = None,
        token: Optional[str] = None,
        cafile: Optional[str] = None,
        context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.address = address
        self.host = host
        self.port = port
        self.token = token
        self.cafile = cafile
        self.context = context

    @property
    def tls(self) -> bool:
        return self.host is not None

    def __repr__(self) -> str:  # never the token
        return f"Endpoint({self.address!r}, cafile={self.cafile!r})"


def parse_tls_address(address: str) -> Tuple[str, int]:
    """``tls://HOST:PORT`` (an IPv6 host in brackets) as ``(HOST, PORT)``."""
    rest = address[len("tls://") :] if address.startswith("tls://") else address
    host, port_text = "", ""
    if rest.startswith("[") and "]" in rest:
        close = rest.index("]")
        host, after = rest[1:close], rest[close + 1 :]
        if after.startswith(":"):
            port_text = after[1:]
    elif ":" in rest:
        host, port_text = rest.rsplit(":", 1)
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"expected tls://HOST:PORT, not {address!r}")
    return host, int(port_text)


def read_token_file(path: str) -> str:
    """The token a file holds; surrounding whitespace is ignored."""
    try:
        with open(path, encoding="utf-8") as file:
            token = file.read().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise AgentdConnectionError(path, f"cannot read the token file: {error}") from None
    if not token:
        raise AgentdConnectionError(path, "the token file is empty")
    return token


def tls_context(cafile: Optional[str], address: str) -> ssl.SSLContext:
    """TLS 1.2 or later; the daemon's certificate checked against ``cafile`` (the system's CAs
    when ``None``) and against the host name (or IP address) of the address."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (OSError, ssl.SSLError) as error:
        raise AgentdConnectionError(address, f"cannot load the CA file {cafile}: {error}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def resolve(
    path: Optional[str],
    token: Optional[str],
    token_file: Optional[str],
    cafile: Optional[str],
    environ: Optional[Mapping[str, str]] = None,
) -> Endpoint:
    """The endpoint for a client's constructor arguments and the environment."""
    env = agentd_environment(environ)
    if path is None:
        connect = env.get("AGENTD_CONNECT")
        if connect:
            path = connect
        elif token is not None or token_file is not None or cafile is not None:
            raise ValueError("token, token_file and cafile are for tls:// addresses only")
        else:
            return Endpoint(default_socket_path(environ))
    if not path.startswith("tls://"):
        if token is not None or token_file is not None or cafile is not None:
            raise ValueError("token, token_file and cafile are for tls:// addresses only")
        if path.startswith("unix://"):
            path = path[len("unix://") :]
        return Endpoint(expand_tilde(path, env))
    host, port = parse_tls_address(path)
    address = "tls://" + (f"[{host}]" if ":" in host else host) + f":{port}"
    if token is not None and token_file is not None:
        raise ValueError("give token or token_file, not both")
    if token is None:
        token_file = token_file or env.get("AGENTD_TOKEN_FILE") or None
        if token_file is None:
            raise ValueError(f"{address} needs a token: token=..., token_file=... or AGENTD_TOKEN_FILE")
        token = read_token_file(expand_tilde(token_file, env))
    if not token:
        raise ValueError("the token is empty")
    cafile = cafile or env.get("AGENTD_CA_FILE") or None
    if cafile is not None:
        cafile = expand_tilde(cafile, env)
    return Endpoint(address, host, port, token, cafile, tls_context(cafile, address))


def handshake_error(endpoint: Endpoint, error: BaseException) -> AgentdConnectionError:
    """The error for a failed TLS handshake; an untrusted certificate says so plainly."""
    if isinstance(error, ssl.SSLCertVerificationError):
        trusted = f"the CA file {endpoint.cafile}" if endpoint.cafile else "the system's CAs"
        detail = error.verify_message or str(error)
        return AgentdConnectionError(
            endpoint.address,
            f"certificate verify failed: {detail} (the daemon's certificate checked against {trusted} "
            f"and the host {endpoint.host})",
        )
    if isinstance(error, ssl.SSLError):
        return AgentdConnectionError(endpoint.address, f"TLS handshake failed: {error}")
    if isinstance(error, socket.gaierror):
        return AgentdConnectionError(endpoint.address, f"cannot resolve {endpoint.host}: {error}")
    if isinstance(error, ConnectionRefusedError):
        return AgentdConnectionError(endpoint.address, "connection refused (is the daemon listening there?)")
    return AgentdConnectionError(endpoint.address, f"{type(error).__name__}: {error}")
