import CUV
import Glibc

/// Client side of a TLS connection over TCP (the bench's `tls://`): connects, then shakes hands
/// as the TLS client on the same memory-BIO layer the listener's connections use, checking the
/// server's certificate against the context's CAs and the host name. Like TCPListener, it speaks
/// TLS only.
public final class TCPConnector {
    private init() {}

    /// Connects to HOST:PORT (a numeric address, or a name resolved here, blocking) and shakes
    /// hands with `tls`, a client context; the certificate must name `serverName` (default: the
    /// host). `done` runs on the loop thread once, with a Connection whose handshake is complete
    /// (set its delegate inside `done`; what it appends to `output` is sealed at `flush()`), or
    /// with the failure: `.system("connect", ...)`, or `.tls(why)` when the handshake failed.
    public static func connect(loop: EventLoop, host: String, port: Int, tls context: TLSContext,
                               serverName: String? = nil,
                               maxLineBytes: Int = Connection.defaultMaxLineBytes,
                               _ done: @escaping (Result<Connection, ReactorError>) -> Void) {
        precondition(!loop.isClosed, "TCPConnector.connect on a closed EventLoop")
        precondition(context.isClient, "TCPConnector.connect needs a client TLSContext")
        var address: sockaddr_storage
        do {
            address = try resolveTCPAddress(host: host, port: port, passive: false)
        } catch let error as ReactorError {
            done(.failure(error))
            return
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
        let attempt = TCPConnectAttempt(loop: loop, context: context, serverName: serverName ?? host,
                                        maxLineBytes: maxLineBytes, done: done)
        let request = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passRetained(attempt).toOpaque()
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                uv_tcp_connect(request, attempt.tcp, $0, tcpConnectFinished)
            }
        }
        if status != 0 {
            Unmanaged<TCPConnectAttempt>.fromOpaque(request.pointee.data).release()
            request.deallocate()
            attempt.finish(status: status)
        }
    }
}

/// A connect in progress, then a handshake in progress. Tracked by the loop until the TCP
/// connect ends, so that EventLoop.close() can abandon it; the Connection is tracked after that.
private final class TCPConnectAttempt: LoopResource {
    let loop: EventLoop
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    let context: TLSContext
    let serverName: String
    let maxLineBytes: Int
    var done: ((Result<Connection, ReactorError>) -> Void)?

    init(loop: EventLoop, context: TLSContext, serverName: String, maxLineBytes: Int,
         done: @escaping (Result<Connection, ReactorError>) -> Void) {
        self.loop = loop
        self.context = context
        self.serverName = serverName
        self.maxLineBytes = maxLineBytes
        self.done = done
        tcp = .allocate(capacity: 1)
        uv_tcp_init(loop.raw, tcp)
        tcp.pointee.data = nil
        loop.track(self)
    }

    func closeForLoopShutdown() {
        // libuv then calls the connect callback with UV_ECANCELED, before freeing the handle.
        if uv_is_closing(asHandle(tcp)) == 0 { uv_close(asHandle(tcp), freeHandleOnClose) }
    }

    func finish(status: Int32) {
        loop.untrack(self)
        if status < 0 {
            if uv_is_closing(asHandle(tcp)) == 0 { uv_close(asHandle(tcp), freeHandleOnClose) }
            report(.failure(.uv("connect", status)))
            return
        }
        // Requests are small and leave once per turn: no reason to let Nagle hold them back.
        uv_tcp_nodelay(tcp, 1)
        let connection = Connection(loop: loop, stream: asStream(tcp), maxLineBytes: maxLineBytes)
        guard connection.enableTLS(context, serverName: serverName) else {
            connection.close()
            report(.failure(.tls("cannot start a TLS session for \(serverName)" + TLSContext.drainErrorQueue())))
            return
        }
        // Until the handshake is done the connection has no delegate: a close is this attempt's failure.
        connection.onClosed = { [unowned connection, self] in
            self.report(.failure(.tls(connection.tlsFailure ?? "the server closed the connection during the TLS handshake")))
        }
        connection.onTLSHandshake = { [unowned connection, self] in
            connection.onClosed = nil
            self.report(.success(connection))
        }
        connection.start()
        connection.startClientHandshake()
    }

    private func report(_ result: Result<Connection, ReactorError>) {
        guard let done else { return }
        self.done = nil
        done(result)
        // Connect errors and handshakes end outside the read phase's usual path; make sure the
        // end-of-turn hook still runs this turn for whatever `done` queued.
        loop.requestPromptEndOfTurn()
    }
}

private let tcpConnectFinished: uv_connect_cb = { request, status in
    let attempt = Unmanaged<TCPConnectAttempt>.fromOpaque(request!.pointee.data).takeRetainedValue()
    request!.deallocate()
    attempt.finish(status: status)
}
