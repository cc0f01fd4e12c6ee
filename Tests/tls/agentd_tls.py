"""Helpers for the TLS tests: a certificate made with openssl, the real agentd binary on
127.0.0.1 (it binds port 0 and logs the port it got), and a client on Python's own ssl module.
Standard library only."""
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def agentd_binary():
    explicit = os.environ.get("AGENTD_BINARY")
    if explicit:
        return explicit
    for configuration in ("debug", "release"):
        path = os.path.join(REPO, ".build", configuration, "agentd")
        if os.path.exists(path):
            return path
    raise RuntimeError("no agentd binary: run `swift build` first or set AGENTD_BINARY")


def make_certificate(directory):
    """A self-signed certificate for localhost and 127.0.0.1, and its key (mode 0600)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o600)
    return cert, key


def write_tokens(path, agents, mode=0o600):
    """agents: {name: token}. Written to a new file that is renamed into place."""
    partial = path + ".new"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write("# agent token\n\n")
        for name, token in agents.items():
            f.write(f"{name} {token}\n")
    os.chmod(partial, mode)
    os.rename(partial, path)


class Daemon:
    """agentd serve on a temporary home, a Unix socket and tls://127.0.0.1:0."""

    def __init__(self, directory, agents=None, env=None, args=None, listen=True, database=None):
        self.directory = directory
        self.home = os.path.join(directory, "home")
        os.makedirs(self.home, exist_ok=True)
        self.cert, self.key = make_certificate(directory) if not os.path.exists(
            os.path.join(directory, "cert.pem")) else (os.path.join(directory, "cert.pem"),
                                                       os.path.join(directory, "key.pem"))
        self.tokens = os.path.join(directory, "tokens")
        if agents is not None:
            write_tokens(self.tokens, agents)
        self.socket_path = os.path.join(self.home, "agentd.sock")
        self.log_path = os.path.join(directory, "agentd.log")
        command = [agentd_binary(), "serve", "--socket", self.socket_path]
        if database:
            command += ["--db", database]
        if listen:
            command += ["--listen", "tls://127.0.0.1:0", "--tls-cert", self.cert, "--tls-key", self.key,
                        "--tokens", self.tokens]
        command += args or []
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENTD_")}
        environment["AGENTD_HOME"] = self.home
        environment.update(env or {})
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=self.log, env=environment)
        self.port = None

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log_text()
            for line in text.splitlines():
                if "listening on tls://127.0.0.1:" in line and self.port is None:
                    self.port = int(line.split("tls://127.0.0.1:")[1].split()[0])
            if " serving " in text:
                return self
            if self.process.poll() is not None:
                raise RuntimeError("agentd exited at start:\n" + text)
            time.sleep(0.02)
        raise RuntimeError("agentd did not start:\n" + self.log_text())

    def wait_exit(self, timeout=20):
        return self.process.wait(timeout=timeout)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def sighup(self):
        self.process.send_signal(signal.SIGHUP)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def tls(self, token=None, timeout=10):
        client = TLSClient(self.port, self.cert, timeout=timeout)
        if token is not None:
            client.authenticate(token)
        return client

    def unix(self, timeout=10):
        return LineClient(UnixSocket(self.socket_path, timeout))


def UnixSocket(path, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


class LineClient:
    """One JSON object per line over any stream socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.next_id = 1

    def send_line(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def read_line(self):
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def request(self, method, params=None):
        message = {"id": self.next_id, "method": method}
        self.next_id += 1
        if params is not None:
            message["params"] = params
        self.send_line(json.dumps(message) + "\n")
        return self.read_line()

    def call(self, method, params=None):
        answer = self.request(method, params)
        if "error" in answer:
            raise AssertionError(f"{method} answered {answer['error']}")
        return answer["result"]

    def at_eof(self, timeout=5):
        """True if the daemon closes the connection within `timeout` (bytes before that are read and dropped)."""
        self.sock.settimeout(timeout)
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class TLSClient(LineClient):
    def __init__(self, port, cafile, timeout=10):
        context = ssl.create_default_context(cafile=cafile)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        super().__init__(context.wrap_socket(raw, server_hostname="localhost"))

    def authenticate(self, token):
        return self.call("Authenticate", {"token": token})


def new_directory():
    return tempfile.mkdtemp(prefix="agentd-tls-")
