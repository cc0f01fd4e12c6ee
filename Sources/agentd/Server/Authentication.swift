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
        let trimmed = NetworkAccess.trimmed(line)
        guard !trimmed.isEmpty else { return false }
        do {
            try tape.parse(trimmed)
        } catch {
            RequestHandler.appendError(NetworkAccess.notYet, id: .none, to: &out)
            return false
        }
        let document = JSONDocument(tape: tape, input: trimmed)
        guard document.kind(document.root) == .object else {
            RequestHandler.appendError(NetworkAccess.notYet, id: .none, to: &out)
            return false
        }
        let id = EchoedId(document)
        guard let method = document.member(document.root, "method"), document.kind(method) == .string,
              document.stringEquals(method, "Authenticate") || document.stringEquals(method, "authenticate") else {
            RequestHandler.appendError(NetworkAccess.notYet, id: id, to: &out)
            return false
        }
        guard let params = document.member(document.root, "params"), document.kind(params) == .object,
              let tokenIndex = document.member(params, "token"), document.kind(tokenIndex) == .string else {
            RequestHandler.appendError(.invalidParams("missing field `token` (a string)"), id: id, to: &out)
            return false
        }
        var presented: [UInt8] = []
        document.stringBytes(tokenIndex, into: &presented)
        guard let agent = tokens.agent(presenting: presented) else {
            RequestHandler.appendError(NetworkAccess.wrongToken, id: id, to: &out)
            return true
        }
        session.agent = agent
        session.token = presented
        session.deadline?.close()
        session.deadline = nil
        out.append(UInt8(ascii: "{"))
        if id.isPresent {
            out.appendASCII("\"id\":")
            id.append(to: &out)
            out.append(UInt8(ascii: ","))
        }
        out.appendASCII("\"result\":{\"agent\":")
        out.appendJSONString(agent)
        out.appendASCII("}}\n")
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

    private static let notYet = RequestError(
        code: .stateRefused, reason: "UNAUTHENTICATED",
        message: "unauthenticated: the first request on a network connection must be Authenticate {token}")
    private static let wrongToken = RequestError(
        code: .stateRefused, reason: "UNAUTHENTICATED", message: "unauthenticated: unknown token")

    private static func trimmed(_ line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var lower = 0, upper = line.count
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A || b == 0x0B || b == 0x0C }
        while lower < upper && isSpace(line[lower]) { lower += 1 }
        while upper > lower && isSpace(line[upper - 1]) { upper -= 1 }
        return UnsafeRawBufferPointer(rebasing: line[lower..<upper])
    }
}
