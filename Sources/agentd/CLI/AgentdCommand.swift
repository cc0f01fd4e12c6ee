import AgentdClient
import ArgumentParser
import Glibc

/// The version `agentd --version` prints.
let agentdVersion = "0.2.0"

/// `agentd`: the root command. With no subcommand (or only serve flags, as
/// `agentd --db PATH`) it serves, as the original's binary does.
struct AgentdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentd",
        abstract: "One durable place where AI agents coordinate: task DAGs, leases, locks and a journal.",
        discussion: """
        With no command, agentd serves; its flags may come without the word serve:
          agentd [serve] [--socket PATH] [--db PATH] [--node-timeout SECS]
            [--context-event-limit N] [--sync normal|full]
            [--socket-mode 0600|0660] [--listen tls://HOST:PORT
            --tls-cert PATH --tls-key PATH --tokens PATH]

        Every other command talks to the daemon on its socket: --socket PATH, else \
        $AGENTD_SOCKET_PATH, else $AGENTD_HOME/agentd.sock (~/.agentd by default; \
        $AGENTD_HOME/.env is read too); or over the network with --connect \
        tls://HOST:PORT --token-file PATH [--ca PATH] ($AGENTD_CONNECT, $AGENTD_TOKEN_FILE, \
        $AGENTD_CA_FILE).

        Exit status: 0 success, 1 the daemon answered an error (or a node failed, or submit \
        refused the file), 64 usage, 69 the daemon is unreachable, 75 a lock or node was not \
        obtained in time.
        """,
        version: agentdVersion,
        subcommands: [
            ServeCommand.self,
            // People: a look inside.
            TasksCommand.self, StatusCommand.self, LocksCommand.self, EventsCommand.self, GraphCommand.self,
            // Work: register a DAG, run commands under a lock or as workers.
            SubmitCommand.self, LockCommand.self, WorkCommand.self,
            // Coding agents: an MCP server on stdio (the AgentdMCP target).
            MCPSubcommand.self,
            // The raw protocol, and a copy of the database.
            CallCommand.self, BackupCommand.self,
        ],
        defaultSubcommand: ServeCommand.self
    )

    /// Parses, runs, and exits with the status the command chose (see ExitStatus).
    static func runFromCommandLine() -> Never {
        // Serve is the default command, so a mistyped command would otherwise read as a
        // stray argument of serve.
        let known = configuration.subcommands.map { $0._commandName } + ["help"]
        if let first = CommandLine.arguments.dropFirst().first, !first.hasPrefix("-"), !known.contains(first) {
            complain("unknown command \(first); the commands are \(known.joined(separator: ", ")) (agentd --help)")
            Glibc.exit(ExitStatus.usage)
        }
        do {
            var command = try parseAsRoot()
            try command.run()
            Glibc.exit(ExitStatus.ok)
        } catch let error where error is CLIFailure || error is AgentdError || error is ConnectionError {
            let failure = CLIFailure(error)
            if !failure.message.isEmpty { complain(failure.message) }
            Glibc.exit(failure.status)
        } catch {
            // Help, --version, usage errors (64), ExitCode: ArgumentParser's own handling.
            exit(withError: error)
        }
    }
}
