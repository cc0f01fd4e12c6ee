import AgentdClient

/// The network listener's settings: `--listen tls://HOST:PORT` (repeatable, or AGENTD_LISTEN,
/// comma-separated), the certificate and key (PEM), the tokens file and the connection cap.
/// There is no plaintext TCP listener: an address without all three files is refused at start.
struct NetworkSettings {
    var listen: [TLSAddress] = []
    var certificatePath: String?
    var keyPath: String?
    var tokensPath: String?
    var maxConnections = 10_000
    /// How long a TLS connection has for its handshake and Authenticate.
    /// AGENTD_TEST_AUTH_TIMEOUT_MS shortens it (tests only).
    var authenticationTimeoutMs: UInt64 = 10_000
    private var listenFromFlags = false

    static let flags: Set<String> = ["--listen", "--tls-cert", "--tls-key", "--tokens", "--max-connections"]

    var isEnabled: Bool { !listen.isEmpty }

    mutating func read(environment env: [String: String], userHome: String) throws {
        if let list = env["AGENTD_LISTEN"] {
            listen = try list.split(separator: ",").map { AgentdEnvironment.trimmed(String($0)) }
                .filter { !$0.isEmpty }.map { try Self.parse($0, setting: "AGENTD_LISTEN") }
        }
        if let path = env["AGENTD_TLS_CERT"] { certificatePath = Configuration.expandTilde(path, userHome: userHome) }
        if let path = env["AGENTD_TLS_KEY"] { keyPath = Configuration.expandTilde(path, userHome: userHome) }
        if let path = env["AGENTD_TOKENS_FILE"] { tokensPath = Configuration.expandTilde(path, userHome: userHome) }
        if let cap = env["AGENTD_MAX_CONNECTIONS"] {
            maxConnections = try Self.positive(cap, setting: "AGENTD_MAX_CONNECTIONS")
        }
        if let ms = env["AGENTD_TEST_AUTH_TIMEOUT_MS"] {
            authenticationTimeoutMs = UInt64(try Self.positive(ms, setting: "AGENTD_TEST_AUTH_TIMEOUT_MS"))
        }
    }

    mutating func read(flag: String, value: String, userHome: String) throws {
        switch flag {
        case "--listen":
            // Flags win over AGENTD_LISTEN: the first --listen replaces its list.
            if !listenFromFlags { listen = [] }
            listenFromFlags = true
            listen.append(try Self.parse(value, setting: "--listen"))
        case "--tls-cert": certificatePath = Configuration.expandTilde(value, userHome: userHome)
        case "--tls-key": keyPath = Configuration.expandTilde(value, userHome: userHome)
        case "--tokens": tokensPath = Configuration.expandTilde(value, userHome: userHome)
        case "--max-connections": maxConnections = try Self.positive(value, setting: "--max-connections")
        default: break
        }
    }

    func validate() throws {
        guard isEnabled else { return }
        var missing: [String] = []
        if certificatePath == nil { missing.append("--tls-cert") }
        if keyPath == nil { missing.append("--tls-key") }
        if tokensPath == nil { missing.append("--tokens") }
        if !missing.isEmpty {
            throw Configuration.Problem(description:
                "--listen \(listen[0]) needs \(missing.joined(separator: ", ")): agentd serves TCP only over TLS with per-agent tokens")
        }
    }

    /// `tls://HOST:PORT`, `tls://[IPV6]:PORT`.
    static func parse(_ text: String, setting: String) throws -> TLSAddress {
        guard text.hasPrefix("tls://") else {
            throw Configuration.Problem(description:
                "\(setting) \(text): only tls://HOST:PORT is served (there is no plaintext TCP listener)")
        }
        do {
            return try TLSAddress(parsing: text, allowAnyPort: true)
        } catch {
            throw Configuration.Problem(description: "\(setting) \(text): \(error)")
        }
    }

    private static func positive(_ text: String, setting: String) throws -> Int {
        guard let value = Int(AgentdEnvironment.trimmed(text)), value > 0, value <= 100_000_000 else {
            throw Configuration.Problem(description: "\(setting) must be a whole number of at least 1, not \"\(text)\"")
        }
        return value
    }
}
