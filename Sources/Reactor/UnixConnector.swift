import CUV

/// Client side of a Unix stream socket, for tests and the load generator.
public final class UnixConnector {
    private init() {}

    /// Connects to `path`; `done` runs on the loop thread with a Connection whose reading starts right
    /// after `done` returns (set its delegate inside `done`). A path that cannot be a socket address
    /// fails synchronously, inside this call. A listener with a full backlog makes libuv fail with
    /// .system("connect", EAGAIN); retry later.
    public static func connect(loop: EventLoop, path: String,
                               _ done: @escaping (Result<Connection, ReactorError>) -> Void) {
        precondition(!loop.isClosed, "UnixConnector.connect on a closed EventLoop")
        do {
            _ = try UnixSocketAddress(path: path)
        } catch let error as ReactorError {
            done(.failure(error))
            return
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        let attempt = ConnectAttempt(loop: loop, done: done)
        let request = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passRetained(attempt).toOpaque()
        uv_pipe_connect(request, attempt.pipe, path, connectFinished)
    }
}

/// A connect in progress. Tracked by the loop so that EventLoop.close() can abandon it.
private final class ConnectAttempt: LoopResource {
    let loop: EventLoop
    let pipe: UnsafeMutablePointer<uv_pipe_t>
    let done: (Result<Connection, ReactorError>) -> Void

    init(loop: EventLoop, done: @escaping (Result<Connection, ReactorError>) -> Void) {
        self.loop = loop
        self.done = done
        pipe = .allocate(capacity: 1)
        uv_pipe_init(loop.raw, pipe, 0)
        pipe.pointee.data = nil
        loop.track(self)
    }

    func closeForLoopShutdown() {
        // libuv then calls the connect callback with UV_ECANCELED, before freeing the handle.
        if uv_is_closing(asHandle(pipe)) == 0 { uv_close(asHandle(pipe), freeHandleOnClose) }
    }

    func finish(status: Int32) {
        loop.untrack(self)
        if status < 0 {
            if uv_is_closing(asHandle(pipe)) == 0 { uv_close(asHandle(pipe), freeHandleOnClose) }
            done(.failure(.uv("connect", status)))
            return
        }
        let connection = Connection(loop: loop, pipe: pipe)
        done(.success(connection))
        connection.start()
        // A connect error is reported from libuv's pending phase, before poll; make sure the end-of-turn
        // hook still runs this turn for whatever `done` queued.
        loop.requestPromptEndOfTurn()
    }
}

private let connectFinished: uv_connect_cb = { request, status in
    let attempt = Unmanaged<ConnectAttempt>.fromOpaque(request!.pointee.data).takeRetainedValue()
    request!.deallocate()
    attempt.finish(status: status)
}
