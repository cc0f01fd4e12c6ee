import AgentdClient
import ArgumentParser
import Glibc

/// `agentd serve`: the daemon. The flags are declared here for help and completions; their
/// values are read by the daemon's own Configuration, as they always were (same defaults,
/// same environment, same messages). A flag Configuration learns must be declared here too.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the daemon (the default when agentd is given no command).",
        discussion: """
        Flags win over the environment, which wins over $AGENTD_HOME/.env:
          AGENTD_HOME                 default ~/.agentd (database, socket, .env)
          AGENTD_DATABASE_URL         sqlite://PATH (sqlite::memory: keeps nothing)
          AGENTD_SOCKET_PATH          the Unix socket
          AGENTD_SOCKET_MODE          0600 (default, owner only) or 0660 (group too)
          AGENTD_NODE_TIMEOUT_SECS    node lease length, default 300
          AGENTD_CONTEXT_EVENT_LIMIT  journal events in a node's context, default 50
          AGENTD_SYNC_INTERVAL_MS     --sync-interval: 1 to 60000, default 50
          AGENTD_ENV_FILE             default $AGENTD_HOME/.env
          AGENTD_LISTEN               tls://HOST:PORT[,...] (with the three below)
          AGENTD_TLS_CERT, AGENTD_TLS_KEY, AGENTD_TOKENS_FILE, AGENTD_MAX_CONNECTIONS
        Every answer is sent after its change is committed. --sync normal (the default): a \
        crash of the daemon loses nothing acknowledged; a power cut loses at most what was \
        acknowledged in the last --sync-interval ms (plus the time of a WAL sync or two), as \
        the WAL is synced off the loop thread at most that long after each commit. --sync full: \
        nothing acknowledged is lost, even to a power cut (the WAL is synced before each \
        answer; --sync-interval is not used). Fencing tokens never repeat in either mode: a \
        block of them is synced before the first is handed out.
        SIGINT and SIGTERM stop the daemon cleanly. TCP is served only over TLS, each agent \
        with its token (docs/SCALING.md).
        """
    )

    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("The Unix socket to serve (default $AGENTD_HOME/agentd.sock).", valueName: "path"),
            completion: .file())
    var socket: String?

    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("The SQLite database (default $AGENTD_HOME/agent_state.db).", valueName: "path"),
            completion: .file())
    var db: String?

    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("Seconds a node lease lasts without a heartbeat (default 300).", valueName: "secs"))
    var nodeTimeout: String?

    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("Journal events in an acquired node's context (default 50).", valueName: "n"))
    var contextEventLimit: String?

    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("SQLite synchronous mode: normal survives a crash of the daemon, full also a power loss.",
                               valueName: "normal|full"),
            completion: .list(["normal", "full"]))
    var sync: String?

    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("With --sync normal, sync the WAL at most this long after a commit (default 50).",
                               valueName: "ms"))
    var syncInterval: String?

    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("The socket's mode: 0600 (owner only, the default) or 0660 (its group too).",
                               valueName: "0600|0660"),
            completion: .list(["0600", "0660"]))
    var socketMode: String?

    @Option(name: .long, parsing: .unconditionalSingleValue,
            help: ArgumentHelp("Also serve TLS over TCP here (repeatable; needs --tls-cert, --tls-key and --tokens).",
                               valueName: "tls://host:port"))
    var listen: [String] = []

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("The TLS certificate (PEM).", valueName: "path"),
            completion: .file())
    var tlsCert: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("The TLS private key (PEM).", valueName: "path"),
            completion: .file())
    var tlsKey: String?

    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("The agents' tokens, one \"NAME TOKEN\" a line (mode 0600).", valueName: "path"),
            completion: .file())
    var tokens: String?

    @Option(name: .long, parsing: .unconditional,
            help: ArgumentHelp("At most this many TLS connections (default 10000).", valueName: "n"))
    var maxConnections: String?

    /// The flags as Configuration reads them (values untouched: it checks them itself).
    var configurationArguments: [String] {
        var flags: [String] = []
        func add(_ flag: String, _ value: String?) { if let value { flags += [flag, value] } }
        add("--socket", socket)
        add("--db", db)
        add("--node-timeout", nodeTimeout)
        add("--context-event-limit", contextEventLimit)
        add("--sync", sync)
        add("--sync-interval", syncInterval)
        add("--socket-mode", socketMode)
        for address in listen { add("--listen", address) }
        add("--tls-cert", tlsCert)
        add("--tls-key", tlsKey)
        add("--tokens", tokens)
        add("--max-connections", maxConnections)
        return flags
    }

    func run() throws {
        let config: Configuration
        do {
            config = try Configuration.load(arguments: configurationArguments,
                                            environment: AgentdEnvironment.processEnvironment(), allowServeFlags: true)
        } catch {
            throw CLIFailure.usage("\(error)")
        }
        throw ExitCode(Daemon.run(config))
    }
}
