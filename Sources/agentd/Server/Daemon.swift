import AgentdBase
import AgentdCore
import AgentdStore
import AgentdProtocol
import Glibc
import Reactor

/// `agentd serve`: claim the socket, open and load the database, serve until a signal.
enum Daemon {
    static func run(_ config: Configuration) -> Int32 {
        umask(0o077)
        raiseDescriptorLimit()
        // Only the directories that will hold a file: an in-memory database with its socket
        // elsewhere leaves no trace, not even an empty AGENTD_HOME.
        for file in config.isInMemory ? [config.socketPath] : [config.socketPath, config.databasePath] {
            if !ensureDirectory(parentDirectory(of: file)) { return 1 }
        }
        do {
            let loop = try EventLoop()
            // Certificate, key and tokens are checked before anything is claimed.
            let network = config.network.isEnabled ? try NetworkAccess(loop: loop, settings: config.network) : nil
            var server: Server?
            // Signals are watched before the socket is claimed: one that comes during the start
            // (loading a big database takes a second or more) waits for the loop and ends in the
            // clean stop, instead of killing the process with its socket left behind.
            loop.onSignal(SIGINT) { server?.shutDown() }
            loop.onSignal(SIGTERM) { server?.shutDown() }
            // SIGHUP reloads the tokens file; without a network listener there is nothing to
            // reload, and it must not end the daemon without its clean stop.
            loop.onSignal(SIGHUP) {
                if let network { network.reloadTokens() } else { Log.info("SIGHUP: nothing to reload (no --listen)") }
            }
            // The socket first: a daemon already serving it must be found before we touch
            // the database it owns.
            // Connections wait in the backlog until the loop runs, by then the server exists.
            let listener = try UnixListener(loop: loop, path: config.socketPath, mode: config.socketMode,
                                            maxLineBytes: maxRequestBytes) {
                server?.accept($0)
            }
            // From here on the socket is ours: whatever stops the start removes it, so that a
            // client finds no socket rather than one nobody answers on.
            do {
                return try serve(config, loop: loop, listener: listener, network: network) { server = $0 }
            } catch {
                listener.close(removingSocketFile: true)
                throw error
            }
        } catch ReactorError.liveDaemonAtPath(let path) {
            Log.error("another agentd is already serving \(path); leaving it alone")
            return 1
        } catch ReactorError.notASocket(let path) {
            Log.error("\(path) exists and is not a socket; refusing to replace it")
            return 1
        } catch {
            Log.error("cannot start: \(error)")
            return 1
        }
    }

    /// Opens and loads the database, then serves on the claimed socket until a signal.
    private static func serve(_ config: Configuration, loop: EventLoop, listener: UnixListener,
                              network: NetworkAccess?, publish: (Server) -> Void) throws -> Int32 {
        // An in-memory database is this process's alone: there is nothing to claim, and a lock
        // file would be the one thing it leaves behind.
        let databaseLock = config.isInMemory ? -1 : try claimDatabase(config.databasePath)
        defer { if databaseLock >= 0 { close(databaseLock) } }
        if config.testPowerLoss {
            try Store.usePowerLossSimulator(checkpointMark: config.testCheckpointMark)
            Log.info("test: SQLite runs on the power-loss simulator; a kill loses every write not yet synced")
        }
        let store = try Store(path: config.databasePath, sync: config.sync, maxPageCount: config.testMaxPageCount,
                              checkpointPages: config.testCheckpointPages.map { Int32($0) })
        store.reportError = { Log.error($0) }
        let clock = SystemClock()
        let coordinator = Coordinator(
            settings: .init(nodeTimeoutSecs: config.nodeTimeoutSecs, contextEventLimit: config.contextEventLimit),
            clock: clock)
        do {
            try store.load(into: coordinator)
        } catch {
            throw StartError(description: "\(config.databasePath) is not a usable SQLite database: \(error)")
        }
        let handler = RequestHandler(
            coordinator: coordinator,
            storeFacts: .init(schemaVersion: store.schemaVersion, latestSchemaVersion: Schema.latestVersion))
        let walSync = store.walSyncer.map { WALSyncSchedule(loop: loop, syncer: $0, intervalMs: config.syncIntervalMs) }
        let server = Server(loop: loop, clock: clock, coordinator: coordinator, store: store,
                            handler: handler, listener: listener, walSync: walSync)
        publish(server)
        if let network {
            server.network = network
            try network.listen { [unowned server] in server.acceptNetwork($0) }
        }
        server.start()
        let syncText = config.sync == .full ? "full" : "normal, WAL synced within \(config.syncIntervalMs) ms"
        Log.info("serving \(config.socketPath) with database \(config.databasePath) (\(coordinator.totals.tasks) tasks, \(coordinator.totals.nodes) nodes loaded, sync \(syncText))")
        loop.run()
        if config.sync == .normal && !config.isInMemory {
            // What the last turns committed goes to disk now, not at a background sync that ended with the loop.
            do { try store.syncWALNow() } catch { Log.error("\(error)") }
        }
        Log.info("stopped")
        return 0
    }

    /// Each agent holds a connection: a swarm of a thousand must not meet the default soft limit
    /// of 1,024 descriptors. Raise it to the hard limit where the system allows.
    private static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = min(limit.rlim_max, 1 << 20)
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            Log.info("could not raise the descriptor limit: \(String(cString: strerror(errno)))")
        }
    }

    /// An exclusive advisory lock beside the database, so two daemons (on different sockets)
    /// never share one database: each keeps its state in memory and would overwrite the other.
    private static func claimDatabase(_ path: String) throws -> Int32 {
        let lockPath = path + ".lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StartError(description: "cannot open \(lockPath): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw StartError(description: "database \(path) is in use by another agentd")
        }
        return fd
    }

    struct StartError: Error, CustomStringConvertible {
        var description: String
    }

    private static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Creates a directory (mode 0700) and its parents if missing.
    private static func ensureDirectory(_ path: String) -> Bool {
        var st = stat()
        if stat(path, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR { return true }
            Log.error("\(path) exists and is not a directory")
            return false
        }
        let parent = parentDirectory(of: path)
        if parent != path && parent != "." && parent != "/" && !ensureDirectory(parent) { return false }
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            Log.error("cannot create \(path): \(String(cString: strerror(errno)))")
            return false
        }
        return true
    }
}
