import AgentdBase
import AgentdProtocol
import Reactor

/// What a network connection has proved. Stored in `Connection.userData`: the Unix socket's
/// connections carry none (its file mode is its access control), so the hot path pays one nil check.
final class AgentSession {
    /// The agent's name once Authenticate succeeded; its default owner and lease owner.
    var agent: String?
    /// The token it presented, so that a reload that changes or removes it ends the connection.
    var token: [UInt8] = []
    /// Closes the connection unless the handshake and Authenticate finish first.
    var deadline: Timer?
}

/// The network side of the daemon: the TLS listeners, the tokens, the Authenticate exchange,
/// the handshake-and-authenticate deadline, and SIGHUP's reload of the tokens file.
final class NetworkAccess {
    private let loop: EventLoop
    private let settings: NetworkSettings
    private let context: TLSContext
    private(set) var tokens: TokenFile
    private var listeners: [TCPListener] = []
    /// Every open network connection, authenticated or not.
    private var sessions: [UInt64: (connection: Connection, session: AgentSession)] = [:]
    private var tape = JSONTape()

    /// Loads the certificate, key and tokens: every problem with them stops the start here.
    init(loop: EventLoop, settings: NetworkSettings) throws {
        self.loop = loop
        self.settings = settings
        context = try TLSContext(certificateChainFile: settings.certificatePath!, privateKeyFile: settings.keyPath!)
        tokens = try TokenFile(path: settings.tokensPath!)
        if tokens.entries.isEmpty {
            Log.info("the tokens file \(tokens.path) names no agent: every network connection will be refused")
        }
    }

    /// Binds every `--listen` address; `accept` gets each connection before it reads.
    func listen(accept: @escaping (Connection) -> Void) throws {
        for address in settings.listen {
            let listener = try TCPListener(loop: loop, host: address.host, port: address.port, tls: context,
                                           maxConnections: settings.maxConnections,
                                           maxLineBytes: maxRequestBytes) { accept($0) }
            listeners.append(listener)
            var bound = address
            bound.port = listener.port
            Log.info("listening on \(bound) (TLS, \(tokens.entries.count) agents, at most \(settings.maxConnections) connections)")
        }
    }

    func stopListening() {
        for listener in listeners { listener.close() }
    }

    /// A new network connection: it has `authenticationTimeoutMs` to shake hands and authenticate.
    func admit(_ connection: Connection) {
        let session = AgentSession()
        connection.userData = session
        sessions[connection.id] = (connection, session)
        let deadline = Timer(loop: loop)
        deadline.keepsLoopAlive = false
        deadline.start(afterMs: settings.authenticationTimeoutMs) { [weak connection] in
            guard let connection, !connection.isClosed else { return }
            connection.close()
        }
        session.deadline = deadline
    }

    func connectionClosed(_ connection: Connection) {
        guard let (_, session) = sessions.removeValue(forKey: connection.id) else { return }
        session.deadline?.close()
        session.deadline = nil
        connection.userData = nil
    }

    /// A line on a connection that has not authenticated. Only Authenticate is answered as asked;
    /// anything else is refused UNAUTHENTICATED and nothing else happens. A wrong token is refused
    /// the same way, and then the caller closes the connection once that answer is written
    /// (the answer is true: `out` is usually the connection's own output).
    func authenticate(_ session: AgentSession, line: UnsafeRawBufferPointer,
                      into out: inout [UInt8]) -> Bool {
        let id: EchoedId, presented: [UInt8]
        switch AuthenticateRequest.decode(line, tape: &tape) {
        case .blank:
            return false
        case let .refused(error, refusedId):
            RequestHandler.appendError(error, id: refusedId, to: &out)
            return false
        case let .authenticate(requestId, token):
            id = requestId
            presented = token
        }
        guard let agent = tokens.agent(presenting: presented) else {
            RequestHandler.appendError(AuthenticateRequest.wrongToken, id: id, to: &out)
            return true
        }
        session.agent = agent
        session.token = presented
        session.deadline?.close()
        session.deadline = nil
        AuthenticateRequest.appendAccepted(agent: agent, id: id, to: &out)
        return false
    }

    /// SIGHUP: read the tokens file again. Connections stay, except those whose token is gone
    /// or changed, which are closed. A file that cannot be used keeps the old tokens.
    func reloadTokens() {
        let fresh: TokenFile
        do {
            fresh = try TokenFile(path: tokens.path)
        } catch {
            Log.error("tokens not reloaded, keeping the \(tokens.entries.count) loaded: \(error)")
            return
        }
        tokens = fresh
        var ended = 0
        for (connection, session) in sessions.values {
            guard let agent = session.agent else { continue }
            guard let token = fresh.token(of: agent), TokenFile.constantTimeEqual(token, session.token) else {
                connection.close()
                ended += 1
                continue
            }
        }
        Log.info("tokens reloaded from \(fresh.path): \(fresh.entries.count) agents, \(ended) connections ended")
    }

}
