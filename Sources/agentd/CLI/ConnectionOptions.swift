import AgentdClient
import ArgumentParser

/// How every client command finds the daemon: `--socket PATH`, or `--connect tls://HOST:PORT`
/// with `--token-file` and `--ca`; without them, as AgentdClient finds it: AGENTD_CONNECT
/// (with AGENTD_TOKEN_FILE and AGENTD_CA_FILE), else the socket the daemon would use
/// (AGENTD_SOCKET_PATH, else AGENTD_HOME/agentd.sock; the .env file read too).
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The daemon's socket (default: $AGENTD_SOCKET_PATH, else $AGENTD_HOME/agentd.sock).",
        valueName: "path"), completion: .file())
    var socket: String?

    @Option(name: .customLong("connect"), help: ArgumentHelp(
        "A daemon over the network, tls://HOST:PORT (default: $AGENTD_CONNECT).", valueName: "address"))
    var address: String?

    @Option(name: .customLong("token-file"), help: ArgumentHelp(
        "The file holding this agent's token, for --connect (default: $AGENTD_TOKEN_FILE).", valueName: "path"),
        completion: .file())
    var tokenFile: String?

    @Option(name: .customLong("ca"), help: ArgumentHelp(
        "The CA certificate (PEM) that signed the daemon's, for --connect (default: $AGENTD_CA_FILE, else the system's).",
        valueName: "path"), completion: .file())
    var caFile: String?

    var settings: ConnectSettings {
        ConnectSettings(socket: socket, connect: address, tokenFile: tokenFile, caFile: caFile)
    }

    /// What the commands that `lock` and `work` run need to reach the same daemon.
    var childEnvironment: [String: String] { settings.environmentForChildren() }

    /// A connection to the daemon; an unreachable one fails with exit status 69.
    func connect() throws -> AgentdConnection {
        do {
            return try settings.open()
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
