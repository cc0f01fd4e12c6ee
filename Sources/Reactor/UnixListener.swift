import CUV
import Glibc

/// A listening Unix stream socket. Each accepted peer becomes a Connection handed to `onAccept`,
/// which should set its delegate; reading starts right after `onAccept` returns.
public final class UnixListener {
    public let path: String
    private let loop: EventLoop
    private let pipe: UnsafeMutablePointer<uv_pipe_t>
    private let onAccept: (Connection) -> Void
    /// The longest line its connections accept (the protocol's limit), counting the "\n".
    private let maxLineBytes: Int
    /// Identity of the socket file we created, so we only ever remove our own.
    private let socketDevice: UInt
    private let socketInode: UInt
    public private(set) var isClosed = false

    /// Binds a Unix stream socket at `path` and listens. The socket file is never wider than `mode`
    /// (0600 unless told; permission bits only), even for an instant: it is bound under the umask
    /// that leaves exactly `mode` (umask(077) would give 0700 for a moment), the umask is
    /// restored, and a chmod(mode) makes sure.
    /// If something exists at `path`: a socket that answers a connect() means a live server (throws
    /// .liveDaemonAtPath, left alone); a socket nobody answers on is stale (unlinked, then bound);
    /// anything else throws .notASocket and is left alone.
    ///
    /// The socket is bound here rather than with uv_pipe_bind because libuv unlinks a path it bound
    /// when the handle closes; this listener leaves the file to its owner (see `close`).
    public init(loop: EventLoop, path: String, mode: mode_t = 0o600, backlog: Int32 = 1024,
                maxLineBytes: Int = Connection.defaultMaxLineBytes,
                onAccept: @escaping (Connection) -> Void) throws {
        self.maxLineBytes = maxLineBytes
        precondition(!loop.isClosed, "UnixListener on a closed EventLoop")
        precondition(mode & ~0o777 == 0, "UnixListener mode takes permission bits only")
        let address = try UnixSocketAddress(path: path)
        try UnixListener.clearStaleSocket(at: path, address: address)
        let fd = try UnixListener.bindSocket(at: path, address: address, mode: mode, backlog: backlog)

        let pipe = UnsafeMutablePointer<uv_pipe_t>.allocate(capacity: 1)
        uv_pipe_init(loop.raw, pipe, 0)
        pipe.pointee.data = nil
        var status = uv_pipe_open(pipe, fd)
        if status != 0 {
            Glibc.close(fd)
        } else {
            status = uv_listen(asStream(pipe), backlog, listenerAccepted)
        }
        let identity = try? fileStatus(path)
        if status != 0 || identity == nil {
            uv_close(asHandle(pipe), freeHandleOnClose)   // closes fd too once it was opened
            unlink(path)                                  // we created it a moment ago
            throw status != 0 ? ReactorError.uv("uv_listen", status) : ReactorError.system("lstat", ENOENT)
        }

        self.loop = loop
        self.path = path
        self.pipe = pipe
        self.onAccept = onAccept
        socketDevice = UInt(identity!.st_dev)
        socketInode = UInt(identity!.st_ino)
        pipe.pointee.data = Unmanaged.passRetained(self).toOpaque()
        loop.track(self)
    }

    /// Stops accepting and closes the handle. The socket file stays (the next start finds it stale and
    /// replaces it). Connections already accepted are not affected.
    public func close() {
        close(removingSocketFile: false)
    }

    /// Like `close()`, and with `removingSocketFile` also unlinks the socket file, but only if it is
    /// still the one this listener created (never a successor's).
    public func close(removingSocketFile: Bool) {
        guard !isClosed else { return }
        isClosed = true
        if removingSocketFile, let status = try? fileStatus(path),
           UInt(status.st_dev) == socketDevice, UInt(status.st_ino) == socketInode {
            // Unlink before closing the fd, so we never remove a successor's fresh socket.
            unlink(path)
        }
        uv_close(asHandle(pipe), listenerClosed)
    }

    fileprivate func accept() {
        let client = UnsafeMutablePointer<uv_pipe_t>.allocate(capacity: 1)
        uv_pipe_init(loop.raw, client, 0)
        client.pointee.data = nil
        if uv_accept(asStream(pipe), asStream(client)) != 0 {
            uv_close(asHandle(client), freeHandleOnClose)
            return
        }
        let connection = Connection(loop: loop, pipe: client, maxLineBytes: maxLineBytes)
        onAccept(connection)
        connection.start()
    }

    fileprivate func didClose() {
        pipe.deallocate()
        loop.untrack(self)
    }

    // MARK: - Setup steps

    private static func clearStaleSocket(at path: String, address: UnixSocketAddress) throws {
        guard let status = try fileStatus(path) else { return }
        guard isSocket(status) else { throw ReactorError.notASocket(path) }
        switch try address.probe() {
        case .live:
            throw ReactorError.liveDaemonAtPath(path)
        case .vanished:
            return
        case .stale:
            if unlink(path) != 0 && errno != ENOENT { throw ReactorError.system("unlink", errno) }
        }
    }

    /// Returns a bound, listening, non-blocking socket whose file has mode `mode`.
    private static func bindSocket(at path: String, address: UnixSocketAddress, mode: mode_t,
                                   backlog: Int32) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ReactorError.system("socket", errno) }

        // umask is process-wide: the daemon binds before it starts any thread that creates files.
        let savedMask = umask(0o777 & ~mode)
        let bound = address.withSockaddr { bind(fd, $0, $1) }
        let bindError = errno
        umask(savedMask)
        guard bound == 0 else {
            Glibc.close(fd)
            throw ReactorError.system("bind", bindError)
        }
        if chmod(path, mode) != 0 {
            let code = errno
            Glibc.close(fd)
            unlink(path)
            throw ReactorError.system("chmod", code)
        }
        if listen(fd, backlog) != 0 {
            let code = errno
            Glibc.close(fd)
            unlink(path)
            throw ReactorError.system("listen", code)
        }
        return fd
    }
}

extension UnixListener: LoopResource {
    func closeForLoopShutdown() { close() }
}

private let listenerAccepted: uv_connection_cb = { server, status in
    // A failed accept (EMFILE, ECONNABORTED) concerns that one peer; libuv keeps listening.
    guard status == 0 else { return }
    let listener = Unmanaged<UnixListener>.fromOpaque(server!.pointee.data).takeUnretainedValue()
    listener.accept()
}

private let listenerClosed: uv_close_cb = { handle in
    let owner = Unmanaged<UnixListener>.fromOpaque(handle!.pointee.data)
    owner.takeUnretainedValue().didClose()
    owner.release()
}
