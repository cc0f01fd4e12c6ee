"""The anchors of bench/compare under profile.py: redis-server (AOF, appendfsync everysec) for the
lock cycle and beanstalkd (binlog) for the lease cycle, started as compare starts them and sent
the requests the bench's drivers send (bench/Sources/Drivers), in profile.py's phases: N
requests of one kind from K connections, one in flight each, then a marker.

Each target gives profile.py its server command, its connections, its set-up, its phases, the
strace marker, and how to split a phase's callgrind profile.
"""

import os
import socket
import time


# The same columns for both anchors (beanstalkd's epoll_wait returns one event a call and it
# re-arms its sockets with epoll_ctl; redis syncs with fdatasync, beanstalkd with fsync).
STRACE_CALLS = ["read", "write", "writev", "epoll_wait", "epoll_ctl", "fsync", "fdatasync"]


def connect_unix(path):
    for _ in range(500):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except ConnectionRefusedError:   # the socket file exists before listen() under valgrind
            sock.close()
            time.sleep(0.02)
    raise SystemExit("cannot connect to " + path)


class Lines:
    """Lines read from a socket, up to a delimiter (CRLF for the anchors, LF for agentd)."""

    def __init__(self, sock, delimiter):
        self.sock = sock
        self.delimiter = delimiter
        self.buffer = b""

    def next(self):
        while self.delimiter not in self.buffer:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise SystemExit("server closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(self.delimiter, 1)
        return line


class LineConn:
    """A connection to a server whose answers are CRLF lines (RESP, beanstalkd's protocol).

    continuation(first_line) says how many more lines the answer has, as the bench's drivers do
    (a RESP bulk string's `$len` header, beanstalkd's RESERVED line before the body)."""

    def __init__(self, path, continuation):
        self.sock = connect_unix(path)
        self.continuation = continuation
        self.lines = Lines(self.sock, b"\r\n")

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        return self.lines.next()

    def read(self):
        first = self.line()
        return [first] + [self.line() for _ in range(self.continuation(first))]


def expect(answers, prefix):
    """Every answer of a phase must be the one the bench counts as a success."""
    for answer in answers:
        if not answer[0].startswith(prefix):
            raise SystemExit(f"expected {prefix!r}, got {answer!r}")
    return answers


# --- redis ---------------------------------------------------------------------------------------

# The bench's release script (RedisDriver.releaseScript), byte for byte.
RELEASE_SCRIPT = b'if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end'


def resp(*words):
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        out.append(b"$%d\r\n%s\r\n" % (len(word), word))
    return b"".join(out)


class Redis:
    name = "redis"

    # What `bench/compare` runs as redis-aof (and redis-mem without persistence).
    def command(self, binary, work, sock, persistence):
        logs = ["--appendonly", "yes", "--appendfsync", "everysec"] if persistence else ["--appendonly", "no"]
        return [binary, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--dir", work,
                "--daemonize", "no", "--logfile", f"{work}/server.log", "--save", ""] + logs

    def connect(self, sock):
        # A bulk string header announces one more line; a null bulk ($-1) does not.
        return LineConn(sock, lambda line: 1 if line[:1] == b"$" and line[1:2] != b"-" else 0)

    def marker(self, name):
        return resp(b"ECHO", b"phase-" + name.encode())

    def setup(self, conns):
        conns[0].send(resp(b"SCRIPT", b"LOAD", RELEASE_SCRIPT))
        self.sha = expect([conns[0].read()], b"$40")[0][1]

    def phases(self, conns, phase):
        # A key per request (the acquire phase takes them all before the release phase gives them
        # back); the owner, which is also the release token, per connection like the bench's.
        def acquire(i, c):
            return resp(b"SET", b"bench:profile-%d-%d" % (c, i), b"bench-profile-c%d" % c, b"NX", b"PX", b"30000")

        def release(i, c):
            return resp(b"EVALSHA", self.sha, b"1", b"bench:profile-%d-%d" % (c, i), b"bench-profile-c%d" % c)

        expect(phase("SET NX PX", acquire), b"+OK")
        expect(phase("EVALSHA release", release), b":1")

    # Inclusive costs by function (redis-server exports its symbols).  `call` runs a command,
    # the Lua script included; the AOF is fed after the command (propagation) and written in
    # beforeSleep; fsync is the bio thread's.
    columns = ["total", "command", "lua", "aof", "read", "reply", "cron", "jemalloc", "mem*"]
    legend = ("  total: all threads; command: call() inclusive (the Lua script too), less the AOF feeding\n"
              "  it does; lua: luaCallFunction; aof: feedAppendOnlyFile + flushAppendOnlyFile + the bio\n"
              "  thread; read: reading and parsing requests (readQueryFromClient less processCommand);\n"
              "  reply: handleClientsWithPendingWrites; cron: serverCron (10 Hz: it follows the run's\n"
              "  wall time, not the requests); exclusive, and so also inside the columns before them:\n"
              "  jemalloc, memcpy/memmove/memset")

    def split(self, total, inclusive, exclusive):
        feed = inclusive("feedAppendOnlyFile")
        command = inclusive(":call [")
        aof = feed + inclusive("flushAppendOnlyFile") + inclusive("bioProcessBackgroundJobs")
        read = inclusive("readQueryFromClient") - inclusive("processCommand")
        return [total, command - feed, inclusive("luaCallFunction"), aof, read,
                inclusive("handleClientsWithPendingWrites"), inclusive("serverCron"),
                exclusive("libjemalloc"), exclusive("memcpy", "memmove", "memset")]

    strace_calls = STRACE_CALLS


# --- beanstalkd ----------------------------------------------------------------------------------

class Beanstalkd:
    name = "beanstalkd"

    # What `bench/compare` runs as beanstalkd: a binlog in the work directory, fsync at most every
    # 50 ms (its default).
    def command(self, binary, work, sock, persistence):
        if not persistence:
            return [binary, "-l", "unix:" + sock]
        os.makedirs(f"{work}/binlog", exist_ok=True)
        return [binary, "-l", "unix:" + sock, "-b", f"{work}/binlog"]

    def connect(self, sock):
        # A RESERVED line is followed by the job's body.
        return LineConn(sock, lambda line: 1 if line.startswith(b"RESERVED ") else 0)

    def marker(self, name):
        # A tube that does not exist: NOT_FOUND, and nothing changes.
        return b"stats-tube phase-%s\r\n" % name.encode()

    def setup(self, conns):
        # A tube per connection, used and watched, `default` ignored (the bench's connection set-up).
        for c, conn in enumerate(conns):
            conn.send(b"use bench-profile-%d\r\nwatch bench-profile-%d\r\nignore default\r\n" % (c, c))
        for conn in conns:
            for prefix in (b"USING", b"WATCHING", b"WATCHING"):
                expect([conn.read()], prefix)

    def phases(self, conns, phase):
        # The lease cycle in four phases; a connection touches and deletes the jobs it reserved
        # (request i of every phase goes to connection i % K), so it holds N/K reservations at once.
        expect(phase("put", lambda i, c: b"put 0 0 120 2\r\n{}\r\n"), b"INSERTED ")
        jobs = [a[0].split()[1] for a in expect(phase("reserve", lambda i, c: b"reserve-with-timeout 0\r\n"),
                                                 b"RESERVED ")]
        expect(phase("touch", lambda i, c: b"touch %s\r\n" % jobs[i]), b"TOUCHED")
        expect(phase("delete", lambda i, c: b"delete %s\r\n" % jobs[i]), b"DELETED")

    # Debian's beanstalkd is stripped: callgrind names none of its functions, so the split is by
    # object file. What the binlog costs is the difference from a run with --no-persistence.
    columns = ["total", "beanstalkd", "libc", "malloc", "other"]
    legend = ("  total: everything the server ran; exclusive: beanstalkd's own code (its binary), libc less\n"
              "  malloc/free, libc's malloc/free, other objects (ld.so, vdso). The binlog's cost is total\n"
              "  less that of a run with --no-persistence (no -b)")

    def split(self, total, inclusive, exclusive):
        own = exclusive("/beanstalkd]")
        malloc = exclusive("malloc/")
        libc = exclusive("libc.so") - malloc
        return [total, own, libc, malloc, total - own - libc - malloc]

    strace_calls = STRACE_CALLS


TARGETS = {"redis": Redis(), "beanstalkd": Beanstalkd()}
