import AgentdBase
import AgentdCore
import AgentdStore
import AgentdProtocol
import AgentdClient
import Glibc

/// Where the daemon keeps its files and how it behaves, read as the original reads it:
/// defaults under ~/.agentd, then the env file, then the process environment, then flags.
struct Configuration {
    var home: String
    var databasePath: String
    var socketPath: String
    var nodeTimeoutSecs: Int64 = 300
    var contextEventLimit: Int = 50
    var sync: Store.SyncMode = .normal
    /// The socket file's mode: 0600 (owner only, the default) or 0660 (its group too, as the
    /// original creates it).
    var socketMode: mode_t = 0o600
    /// `sqlite::memory:` (or `--db :memory:`): nothing is kept on disk, no lock file either.
    var isInMemory: Bool { databasePath == ":memory:" }
    /// AGENTD_TEST_MAX_PAGE_COUNT: caps the database so writes fail (fault tests only).
    var testMaxPageCount: Int64?
    /// The network listener (`--listen tls://...`); see Configuration+Network.swift.
    var network = NetworkSettings()
    /// `--sync normal`: the WAL is synced (off the loop thread) at most this long after a commit.
    var syncIntervalMs: Int64 = 50
    static let syncIntervalRange: ClosedRange<Int64> = 1...60_000
    /// AGENTD_TEST_POWER_LOSS=1: SQLite runs on the power-loss simulator (CPowerLoss), so that a
    /// SIGKILL loses what a power cut would (crash harness and tests only).
    var testPowerLoss = false
    /// AGENTD_TEST_CHECKPOINT_MARK=PATH (with the simulator): the first database write of a
    /// checkpoint creates PATH and pauses, so a harness can cut the power in the middle of it.
    var testCheckpointMark: String?
    /// AGENTD_TEST_CHECKPOINT_PAGES=N: a background checkpoint starts at N WAL pages, not 10,000.
    var testCheckpointPages: Int64?

    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads the environment (and its .env file) and then the flags of `serve` or `call`.
    static func load(arguments: [String], environment: [String: String], allowServeFlags: Bool) throws -> Configuration {
        // The home, the .env file and the socket are found as every client finds them.
        let resolved = AgentdEnvironment(processEnvironment: environment)
        let env = resolved.values
        let userHome = resolved.userHome
        var config = Configuration(home: resolved.home, databasePath: resolved.home + "/agent_state.db",
                                   socketPath: resolved.socketPath)
        if let url = env["AGENTD_DATABASE_URL"] {
            config.databasePath = try databasePath(fromURL: url, userHome: userHome)
        }
        if let mode = env["AGENTD_SOCKET_MODE"] {
            config.socketMode = try socketMode(mode, setting: "AGENTD_SOCKET_MODE")
        }
        if let timeout = env["AGENTD_NODE_TIMEOUT_SECS"] {
            config.nodeTimeoutSecs = try nonNegative(timeout, setting: "AGENTD_NODE_TIMEOUT_SECS")
        }
        if let pages = env["AGENTD_TEST_MAX_PAGE_COUNT"] {
            config.testMaxPageCount = try nonNegative(pages, setting: "AGENTD_TEST_MAX_PAGE_COUNT")
        }
        if let interval = env["AGENTD_SYNC_INTERVAL_MS"] {
            config.syncIntervalMs = try syncInterval(interval, setting: "AGENTD_SYNC_INTERVAL_MS")
        }
        if let flag = env["AGENTD_TEST_POWER_LOSS"] {
            guard flag == "0" || flag == "1" else {
                throw Problem(description: "AGENTD_TEST_POWER_LOSS must be 0 or 1, not \"\(flag)\"")
            }
            config.testPowerLoss = flag == "1"
        }
        if let mark = env["AGENTD_TEST_CHECKPOINT_MARK"], !mark.isEmpty { config.testCheckpointMark = mark }
        if let pages = env["AGENTD_TEST_CHECKPOINT_PAGES"] {
            let value = try nonNegative(pages, setting: "AGENTD_TEST_CHECKPOINT_PAGES")
            guard value >= 1, value <= 1_000_000 else {
                throw Problem(description: "AGENTD_TEST_CHECKPOINT_PAGES must be from 1 to 1000000, not \"\(pages)\"")
            }
            config.testCheckpointPages = value
        }
        if let limit = env["AGENTD_CONTEXT_EVENT_LIMIT"] {
            config.contextEventLimit = Int(try nonNegative(limit, setting: "AGENTD_CONTEXT_EVENT_LIMIT"))
        }
        if allowServeFlags { try config.network.read(environment: env, userHome: userHome) }

        var rest = arguments[...]
        while let flag = rest.popFirst() {
            func value() throws -> String {
                guard let value = rest.popFirst() else { throw Problem(description: "\(flag) needs a value") }
                return value
            }
            switch flag {
            case "--socket":
                config.socketPath = expandTilde(try value(), userHome: userHome)
            case "--db" where allowServeFlags:
                config.databasePath = expandTilde(try value(), userHome: userHome)
            case "--node-timeout" where allowServeFlags:
                config.nodeTimeoutSecs = try nonNegative(try value(), setting: "--node-timeout")
            case "--context-event-limit" where allowServeFlags:
                config.contextEventLimit = Int(try nonNegative(try value(), setting: "--context-event-limit"))
            case "--socket-mode" where allowServeFlags:
                config.socketMode = try socketMode(try value(), setting: "--socket-mode")
            case "--sync" where allowServeFlags:
                let text = try value()
                guard let mode = Store.SyncMode(rawValue: text) else {
                    throw Problem(description: "--sync must be normal or full, not \(text)")
                }
                config.sync = mode
            case "--sync-interval" where allowServeFlags:
                config.syncIntervalMs = try syncInterval(try value(), setting: "--sync-interval")
            case _ where allowServeFlags && NetworkSettings.flags.contains(flag):
                try config.network.read(flag: flag, value: try value(), userHome: userHome)
            default:
                throw Problem(description: "unknown option: \(flag)")
            }
        }
        if allowServeFlags { try config.network.validate() }
        return config
    }

    static func nonNegative(_ text: String, setting: String) throws -> Int64 {
        guard let value = Int64(AgentdEnvironment.trimmed(text)), value >= 0, value <= 100 * 365 * 86_400 else {
            throw Problem(description: "\(setting) must be a whole number of at least 0, not \"\(text)\"")
        }
        return value
    }

    /// An octal mode, 0600 or 0660 only: a socket anyone may connect to would let any local user
    /// take and release every lease and lock.
    private static func socketMode(_ text: String, setting: String) throws -> mode_t {
        let digits = AgentdEnvironment.trimmed(text)
        guard !digits.isEmpty, digits.allSatisfy({ ("0"..."7").contains($0) }),
              let mode = mode_t(digits, radix: 8), mode == 0o600 || mode == 0o660 else {
            throw Problem(description: "\(setting) must be 0600 or 0660 (octal), not \"\(text)\"")
        }
        return mode
    }

    private static func syncInterval(_ text: String, setting: String) throws -> Int64 {
        guard let value = Int64(AgentdEnvironment.trimmed(text)), syncIntervalRange.contains(value) else {
            throw Problem(description: "\(setting) must be a whole number of milliseconds from \(syncIntervalRange.lowerBound) to \(syncIntervalRange.upperBound), not \"\(text)\"")
        }
        return value
    }

    /// `sqlite://PATH` (also `sqlite:PATH`), with any `?options` dropped.
    static func databasePath(fromURL url: String, userHome: String) throws -> String {
        var rest: Substring
        if url.hasPrefix("sqlite://") {
            rest = url.dropFirst("sqlite://".count)
        } else if url.hasPrefix("sqlite:") {
            rest = url.dropFirst("sqlite:".count)
        } else {
            throw Problem(description: "AGENTD_DATABASE_URL must look like sqlite://PATH, not \"\(url)\"")
        }
        if let question = rest.firstIndex(of: "?") { rest = rest[..<question] }
        guard !rest.isEmpty else { throw Problem(description: "AGENTD_DATABASE_URL names no file: \"\(url)\"") }
        return expandTilde(String(rest), userHome: userHome)
    }

    static func expandTilde(_ path: String, userHome: String) -> String {
        AgentdEnvironment.expandTilde(path, userHome: userHome)
    }
}
