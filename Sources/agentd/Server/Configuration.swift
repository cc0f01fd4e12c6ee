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
    /// `--sync normal`: the WAL is synced (off the loop thread) at most this long after a commit.
    var syncIntervalMs: Int64 = 50
    static let syncIntervalRange: ClosedRange<Int64> = 1...60_000
    /// AGENTD_TEST_MAX_PAGE_COUNT: caps the database so writes fail (fault tests only).
    var testMaxPageCount: Int64?
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
        var env = environment
        let userHome = environment["HOME"] ?? "/tmp"
        let defaultHome = userHome + "/.agentd"
        let envFile = environment["AGENTD_ENV_FILE"] ?? ((environment["AGENTD_HOME"] ?? defaultHome) + "/.env")
        // The process environment wins over the file.
        for (key, value) in readEnvFile(envFile) where env[key] == nil { env[key] = value }

        let home = expandTilde(env["AGENTD_HOME"] ?? defaultHome, userHome: userHome)
        var config = Configuration(home: home, databasePath: home + "/agent_state.db", socketPath: home + "/agentd.sock")
        if let url = env["AGENTD_DATABASE_URL"] {
            config.databasePath = try databasePath(fromURL: url, userHome: userHome)
        }
        if let socket = env["AGENTD_SOCKET_PATH"] { config.socketPath = expandTilde(socket, userHome: userHome) }
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
            case "--sync" where allowServeFlags:
                let text = try value()
                guard let mode = Store.SyncMode(rawValue: text) else {
                    throw Problem(description: "--sync must be normal or full, not \(text)")
                }
                config.sync = mode
            case "--sync-interval" where allowServeFlags:
                config.syncIntervalMs = try syncInterval(try value(), setting: "--sync-interval")
            default:
                throw Problem(description: "unknown option: \(flag)")
            }
        }
        return config
    }

    private static func nonNegative(_ text: String, setting: String) throws -> Int64 {
        guard let value = Int64(text.trimmingSpaces), value >= 0, value <= 100 * 365 * 86_400 else {
            throw Problem(description: "\(setting) must be a whole number of at least 0, not \"\(text)\"")
        }
        return value
    }

    private static func syncInterval(_ text: String, setting: String) throws -> Int64 {
        guard let value = Int64(text.trimmingSpaces), syncIntervalRange.contains(value) else {
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
        if path == "~" { return userHome }
        if path.hasPrefix("~/") { return userHome + path.dropFirst(1) }
        return path
    }

    /// KEY=VALUE lines; `#` comments, blank lines, an `export ` prefix and quotes are allowed.
    static func readEnvFile(_ path: String) -> [String: String] {
        guard let file = fopen(path, "r") else { return [:] }
        defer { fclose(file) }
        var result: [String: String] = [:]
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        while getline(&line, &capacity, file) > 0 {
            var text = String(cString: line!).trimmingSpaces
            if text.isEmpty || text.hasPrefix("#") { continue }
            if text.hasPrefix("export ") { text = String(text.dropFirst(7)).trimmingSpaces }
            guard let equals = text.firstIndex(of: "=") else { continue }
            let key = String(text[..<equals]).trimmingSpaces
            var value = String(text[text.index(after: equals)...]).trimmingSpaces
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            result[key] = value
        }
        free(line)
        return result
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\r" || c == "\n" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" || c == "\n" { s = s.dropLast() }
        return String(s)
    }
}
