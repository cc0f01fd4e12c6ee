/// How a client finds the daemon: flags first, then the environment. `socket` (a Unix socket
/// path) wins; else `connect` (`tls://HOST:PORT`, with `tokenFile` and `caFile`), else
/// `AGENTD_CONNECT` (with `AGENTD_TOKEN_FILE` and `AGENTD_CA_FILE`), else the Unix socket the
/// daemon itself would use (`AGENTD_SOCKET_PATH`, `AGENTD_HOME`, the `.env` file).
public struct ConnectSettings: Sendable {
    public var socket: String?
    public var connect: String?
    public var tokenFile: String?
    public var caFile: String?

    public init(socket: String? = nil, connect: String? = nil, tokenFile: String? = nil, caFile: String? = nil) {
        self.socket = socket
        self.connect = connect
        self.tokenFile = tokenFile
        self.caFile = caFile
    }

    /// Where `open` connects: a socket path or a `tls://` address, for messages.
    public func endpoint(_ environment: AgentdEnvironment = .current) -> String {
        if let socket { return environment.expandTilde(socket) }
        if let address = tlsAddress(environment) { return address }
        return environment.socketPath
    }

    public func open(_ environment: AgentdEnvironment = .current) throws -> AgentdConnection {
        if let socket { return try AgentdConnection(socketPath: environment.expandTilde(socket)) }
        guard let address = tlsAddress(environment) else { return try AgentdConnection(environment: environment) }
        let tokenPath = tokenFile ?? environment["AGENTD_TOKEN_FILE"]
        let token = try tokenPath.map { try AgentdConnection.readTokenFile(environment.expandTilde($0)) }
        let ca = (caFile ?? environment["AGENTD_CA_FILE"]).map(environment.expandTilde)
        return try AgentdConnection(endpoint: address, caFile: ca, token: token)
    }

    /// What a command run by a client needs in its environment to reach the same daemon (so it
    /// can `agentd call` itself): AGENTD_SOCKET_PATH, or AGENTD_CONNECT with the token and CA files.
    public func environmentForChildren(_ environment: AgentdEnvironment = .current) -> [String: String] {
        guard socket == nil, let address = tlsAddress(environment) else {
            return ["AGENTD_SOCKET_PATH": endpoint(environment)]
        }
        var variables = ["AGENTD_CONNECT": address]
        if let tokenPath = tokenFile ?? environment["AGENTD_TOKEN_FILE"] {
            variables["AGENTD_TOKEN_FILE"] = environment.expandTilde(tokenPath)
        }
        if let ca = caFile ?? environment["AGENTD_CA_FILE"] { variables["AGENTD_CA_FILE"] = environment.expandTilde(ca) }
        return variables
    }

    private func tlsAddress(_ environment: AgentdEnvironment) -> String? {
        if let connect, !connect.isEmpty { return connect }
        if let fromEnvironment = environment["AGENTD_CONNECT"], !fromEnvironment.isEmpty { return fromEnvironment }
        return nil
    }
}
