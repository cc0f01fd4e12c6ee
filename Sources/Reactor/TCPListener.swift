import CUV
import Glibc

/// A listening TCP socket whose connections all speak TLS: there is no plaintext TCP listener.
/// Each accepted peer becomes a Connection (TLS on, handshake driven by its first reads) handed
/// to `onAccept`, which should set its delegate; reading starts right after `onAccept` returns.
///
/// At most `maxConnections` connections of this listener are open at once: a peer beyond that
/// is accepted and closed at once (counted in `refusedCount`), so the backlog never fills with
/// peers that will never be served.
public final class TCPListener {
    public let host: String
    /// The bound port (the kernel's choice when 0 was asked for).
    public private(set) var port: Int = 0
    public var maxConnections: Int
    public private(set) var connectionCount = 0
    public private(set) var refusedCount: UInt64 = 0
    public private(set) var isClosed = false

    private let loop: EventLoop
    private let tcp: UnsafeMutablePointer<uv_tcp_t>
    private let context: TLSContext
    private let onAccept: (Connection) -> Void
    /// The longest line its connections accept (the protocol's limit), counting the "\n".
    private let maxLineBytes: Int

    /// Binds HOST:PORT (a numeric IPv4 or IPv6 address, or a name resolved once, here) and listens.
    public init(loop: EventLoop, host: String, port: Int, tls context: TLSContext,
                maxConnections: Int = 10_000, backlog: Int32 = 1024,
                maxLineBytes: Int = Connection.defaultMaxLineBytes,
                onAccept: @escaping (Connection) -> Void) throws {
        self.maxLineBytes = maxLineBytes
        precondition(!loop.isClosed, "TCPListener on a closed EventLoop")
        var storage = try resolveTCPAddress(host: host, port: port, passive: true)
        let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        uv_tcp_init(loop.raw, tcp)
        tcp.pointee.data = nil
        var status = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_bind(tcp, $0, 0) }
        }
        if status == 0 { status = uv_listen(asStream(tcp), backlog, tcpAccepted) }
        if status != 0 {
            uv_close(asHandle(tcp), freeHandleOnClose)
            throw ReactorError.uv(status == 0 ? "uv_listen" : "listen on \(host):\(port)", status)
        }
        self.loop = loop
        self.host = host
        self.tcp = tcp
        self.context = context
        self.maxConnections = maxConnections
        self.onAccept = onAccept
        self.port = TCPListener.boundPort(tcp) ?? port
        tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
        loop.track(self)
    }

    /// Stops accepting. Connections already accepted are not affected.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        uv_close(asHandle(tcp), tcpListenerClosed)
    }

    fileprivate func accept() {
        let client = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        uv_tcp_init(loop.raw, client)
        client.pointee.data = nil
        guard uv_accept(asStream(tcp), asStream(client)) == 0 else {
            uv_close(asHandle(client), freeHandleOnClose)
            return
        }
        guard connectionCount < maxConnections else {
            refusedCount += 1
            uv_close(asHandle(client), freeHandleOnClose)
            return
        }
        // Answers are small and leave once per turn: no reason to let Nagle hold them back.
        uv_tcp_nodelay(client, 1)
        let connection = Connection(loop: loop, stream: asStream(client), maxLineBytes: maxLineBytes)
        guard connection.enableTLS(context) else {
            connection.close()
            return
        }
        connectionCount += 1
        connection.onClosed = { [weak self] in self?.connectionCount -= 1 }
        onAccept(connection)
        connection.start()
    }

    fileprivate func didClose() {
        tcp.deallocate()
        loop.untrack(self)
    }

    private static func boundPort(_ tcp: UnsafeMutablePointer<uv_tcp_t>) -> Int? {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_getsockname(tcp, $0, &length) }
        }
        guard status == 0 else { return nil }
        return withUnsafeBytes(of: &storage) { raw -> Int in
            // sin_port and sin6_port are at the same offset, in network order.
            Int(raw[2]) << 8 | Int(raw[3])
        }
    }
}

extension TCPListener: LoopResource {
    func closeForLoopShutdown() { close() }
}

private let tcpAccepted: uv_connection_cb = { server, status in
    guard status == 0 else { return }
    Unmanaged<TCPListener>.fromOpaque(server!.pointee.data).takeUnretainedValue().accept()
}

private let tcpListenerClosed: uv_close_cb = { handle in
    let owner = Unmanaged<TCPListener>.fromOpaque(handle!.pointee.data)
    owner.takeUnretainedValue().didClose()
    owner.release()
}

/// The first address getaddrinfo gives for HOST:PORT (a numeric address, or a name resolved here,
/// blocking): to bind (`passive`) or to connect to.
func resolveTCPAddress(host: String, port: Int, passive: Bool) throws -> sockaddr_storage {
    guard (0...65535).contains(port) else { throw ReactorError.system("port \(port)", EINVAL) }
    var hints = addrinfo()
    hints.ai_flags = (passive ? AI_PASSIVE : 0) | AI_NUMERICSERV
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var found: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(host, String(port), &hints, &found)
    guard status == 0, let first = found else {
        throw ReactorError.system("cannot resolve \(host)", status == EAI_SYSTEM ? errno : EINVAL)
    }
    defer { freeaddrinfo(found) }
    var storage = sockaddr_storage()
    withUnsafeMutableBytes(of: &storage) { raw in
        raw.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr,
                                                    count: Int(first.pointee.ai_addrlen)))
    }
    return storage
}
