import AgentdClient
import ArgumentParser

/// `--socket PATH`, which every client command takes; without it the socket is found as the
/// daemon finds it (AGENTD_SOCKET_PATH, else AGENTD_HOME/agentd.sock, the .env file read too).
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The daemon's socket (default: $AGENTD_SOCKET_PATH, else $AGENTD_HOME/agentd.sock).",
        valueName: "path"), completion: .file())
    var socket: String?

    var socketPath: String {
        let environment = AgentdEnvironment.current
        return socket.map(environment.expandTilde) ?? environment.socketPath
    }

    /// A connection to the daemon; an unreachable socket fails with exit status 69.
    func connect() throws -> AgentdConnection {
        do {
            return try AgentdConnection(socketPath: socketPath)
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
