import Glibc

/// Connecting to a daemon on another machine: `tls://HOST:PORT`, the daemon's certificate
/// checked against a CA file, and the agent's token sent as the first request (Authenticate).
extension AgentdConnection {
    /// Connects to `tls://HOST:PORT` (TLS 1.2 or later), checks the daemon's certificate against
    /// `caFile` (the system's CAs when nil) and HOST, and authenticates with `token`. Throws
    /// `ConnectionError` when the daemon cannot be reached or its certificate is not trusted, and
    /// `AgentdError` (reason UNAUTHENTICATED) when the token is refused.
    public convenience init(tlsHost host: String, port: Int, caFile: String?, token: String) throws {
        let endpoint = "tls://" + (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
        let fd = try AgentdConnection.connectTCP(host: host, port: port, endpoint: endpoint)
        let session: TLSClientSession
        do {
            session = try TLSClientSession(fd: fd, host: host, caFile: caFile)
        } catch let error as ConnectionError {
            Glibc.close(fd)
            if case let .closed(why) = error { throw ConnectionError.unreachable(endpoint: endpoint, reason: why) }
            throw error
        }
        self.init(connected: fd, endpoint: endpoint, tls: session)
        do {
            agentName = try call("Authenticate", ["token": .string(token)], timeout: 30)["agent"]?.stringValue
        } catch {
            close()
            throw error
        }
    }

    /// Connects to `endpoint`: `tls://HOST:PORT` (then `token` is needed) or a Unix socket path
    /// (`unix://PATH` or a bare path).
    public convenience init(endpoint: String, caFile: String? = nil, token: String? = nil) throws {
        if endpoint.hasPrefix("tls://") {
            let address: TLSAddress
            do { address = try TLSAddress(parsing: endpoint) } catch {
                throw ConnectionError.unreachable(endpoint: endpoint, reason: "expected tls://HOST:PORT (\(error))")
            }
            let (host, port) = (address.host, address.port)
            guard let token else {
                throw ConnectionError.unreachable(endpoint: endpoint, reason: "a tls:// endpoint needs a token (--token-file)")
            }
            try self.init(tlsHost: host, port: port, caFile: caFile, token: token)
        } else {
            let path = endpoint.hasPrefix("unix://") ? String(endpoint.dropFirst("unix://".count)) : endpoint
            try self.init(socketPath: path)
        }
    }

    /// What the environment says: `AGENTD_CONNECT=tls://HOST:PORT` with `AGENTD_TOKEN_FILE` and
    /// `AGENTD_CA_FILE`, else the Unix socket the daemon would use.
    public static func connect(environment: AgentdEnvironment = .current) throws -> AgentdConnection {
        try ConnectSettings().open(environment)
    }

    /// A token file holds the bare token; surrounding whitespace is ignored.
    public static func readTokenFile(_ path: String) throws -> String {
        guard let file = fopen(path, "r") else {
            throw ConnectionError.unreachable(endpoint: path, reason: "cannot read the token file: \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while case let n = fread(&chunk, 1, chunk.count, file), n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
        let token = AgentdEnvironment.trimmed(String(decoding: bytes, as: UTF8.self))
        guard !token.isEmpty else { throw ConnectionError.unreachable(endpoint: path, reason: "the token file is empty") }
        return token
    }

    static func connectTCP(host: String, port: Int, endpoint: String) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &found)
        guard status == 0, found != nil else {
            throw ConnectionError.unreachable(endpoint: endpoint, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(found) }
        var reason = "no address"
        var candidate = found
        while let info = candidate {
            candidate = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
            if fd < 0 { reason = String(cString: strerror(errno)); continue }
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return fd
            }
            reason = String(cString: strerror(errno))
            Glibc.close(fd)
        }
        throw ConnectionError.unreachable(endpoint: endpoint, reason: "\(reason) (is the daemon listening there?)")
    }
}
