import AgentdClient
import ArgumentParser

/// `--socket PATH`, which every client command takes; without it the daemon is found as
/// AgentdClient finds it: AGENTD_CONNECT (tls://HOST:PORT, with AGENTD_TOKEN_FILE), else the
/// socket the daemon would use (AGENTD_SOCKET_PATH, else AGENTD_HOME/agentd.sock; the .env
/// file read too).
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The daemon's socket (default: $AGENTD_SOCKET_PATH, else $AGENTD_HOME/agentd.sock).",
        valueName: "path"), completion: .file())
    var socket: String?

    var socketPath: String {
        let environment = AgentdEnvironment.current
        return socket.map(environment.expandTilde) ?? environment.socketPath
    }

    /// A connection to the daemon; an unreachable one fails with exit status 69.
    func connect() throws -> AgentdConnection {
        do {
            if let socket { return try AgentdConnection(socketPath: AgentdEnvironment.current.expandTilde(socket)) }
            return try AgentdConnection.connect(environment: .current)
        } catch {
            throw CLIFailure(error)
        }
    }
}

/// `--json`: print the daemon's answer instead of a table.
struct JSONFlag: ParsableArguments {
    @Flag(name: .long, help: "Print the daemon's JSON answer instead of a table.")
    var json = false
}

/// A JSON object from a literal, its members in the order written.
func members(_ pairs: KeyValuePairs<String, JSONValue>) -> JSONObject {
    JSONObject(pairs.map { ($0.key, $0.value) })
}
