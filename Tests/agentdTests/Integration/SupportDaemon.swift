// Integration test support: one agentd daemon process in its own temporary directory.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Make a fresh private directory under /tmp (short paths: sun_path holds 108 bytes).
func itMakeTempDir(_ prefix: String = "agd") throws -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw ITError("mkdtemp failed: \(String(cString: strerror(errno)))")
    }
    return String(cString: made)
}

/// An `agentd serve` process with its socket, database and AGENTD_HOME in one temporary
/// directory. It can be stopped, killed and started again on the same database and socket.
final class ITDaemon {
    let directory: String
    var socketPath: String
    var dbPath: String
    let home: String
    /// Extra `serve` arguments (e.g. ["--node-timeout", "1"]).
    var arguments: [String]
    /// Extra environment on top of a cleaned copy of ours.
    var environment: [String: String]
    private(set) var child: ITChild?
    private var starts = 0

    init(directory: String, arguments: [String] = [], environment: [String: String] = [:]) throws {
        self.directory = directory
        self.socketPath = "\(directory)/d.sock"
        self.dbPath = "\(directory)/state.db"
        self.home = "\(directory)/home"
        self.arguments = arguments
        self.environment = environment
        guard mkdir(home, 0o700) == 0 || errno == EEXIST else {
            throw ITError("mkdir \(home): \(String(cString: strerror(errno)))")
        }
    }

    /// The agentd binary: $AGENTD_BIN, else `agentd` beside the test runner executable.
    static func binaryPath() throws -> String {
        let env = ProcessInfo.processInfo.environment
        if let explicit = env["AGENTD_BIN"], !explicit.isEmpty {
            guard access(explicit, X_OK) == 0 else { throw ITError("AGENTD_BIN=\(explicit) is not executable") }
            return explicit
        }
        var candidates: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append((exe as NSString).deletingLastPathComponent)
        }
        for argument in CommandLine.arguments.prefix(2) where argument.hasSuffix(".xctest") || argument == CommandLine.arguments[0] {
            let absolute = argument.hasPrefix("/") ? argument : FileManager.default.currentDirectoryPath + "/" + argument
            candidates.append((absolute as NSString).deletingLastPathComponent)
        }
        for dir in candidates {
            let path = "\(dir)/agentd"
            var info = stat()
            if stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, access(path, X_OK) == 0 {
                return path
            }
        }
        throw ITError("agentd binary not found beside the test runner (looked in \(candidates)); build it or set AGENTD_BIN")
    }

    /// Our environment without any AGENTD_* setting, with AGENTD_HOME pointing into the
    /// temporary directory, plus `environment`.
    var effectiveEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AGENTD_") }
        env["AGENTD_HOME"] = home
        for (key, value) in environment { env[key] = value }
        return env
    }

    /// When false, `serve` gets no --socket/--db and finds its paths from the environment
    /// (set `socketPath` to where the daemon is expected to listen).
    var passPaths = true

    var serveArguments: [String] {
        passPaths ? ["serve", "--socket", socketPath, "--db", dbPath] + arguments : ["serve"] + arguments
    }

    var isRunning: Bool { child?.isRunning ?? false }

    /// Spawn the daemon; with `waitReady`, return once a connect() to the socket succeeds
    /// (bounded poll), or throw with its stderr if it exits or never gets there.
    func start(waitReady: Bool = true, timeout: TimeInterval = 10) throws {
        if let child, child.isRunning { throw ITError("daemon already running (pid \(child.pid))") }
        starts += 1
        let binary = try ITDaemon.binaryPath()
        child = try ITChild.spawn(binary, serveArguments, environment: effectiveEnvironment,
                                  stdoutPath: "\(directory)/stdout.\(starts).log",
                                  stderrPath: "\(directory)/stderr.\(starts).log")
        if waitReady { try self.waitReady(timeout: timeout) }
    }

    func waitReady(timeout: TimeInterval = 10) throws {
        guard let child else { throw ITError("daemon not started") }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if !child.isRunning {
                throw ITError("daemon exited (\(child.exit!)) before accepting connections; stderr:\n\(child.stderr)")
            }
            if let probe = ITLineClient.tryConnect(socketPath) {
                probe.close()
                return
            }
            if Date() > deadline {
                throw ITError("daemon did not accept connections on \(socketPath) within \(timeout) s; stderr:\n\(child.stderr)")
            }
            usleep(10_000)
        }
    }

    /// SIGTERM and wait (bounded) for the exit.
    @discardableResult
    func stop(timeout: TimeInterval = 10) throws -> ITExit {
        guard let child else { throw ITError("daemon not started") }
        child.signal(SIGTERM)
        guard let exit = child.waitForExit(timeout: timeout) else {
            child.killAndReap()
            throw ITError("daemon did not exit within \(timeout) s of SIGTERM; stderr:\n\(child.stderr)")
        }
        return exit
    }

    /// kill -9 and reap: a crash.
    func crash() {
        child?.killAndReap()
    }

    /// Wait (bounded) for a daemon that should refuse to run to exit.
    func waitForExit(timeout: TimeInterval = 10) throws -> ITExit {
        guard let child else { throw ITError("daemon not started") }
        guard let exit = child.waitForExit(timeout: timeout) else {
            throw ITError("daemon still running after \(timeout) s; stderr:\n\(child.stderr)")
        }
        return exit
    }

    func connect() throws -> ITLineClient { try ITLineClient.connect(socketPath) }

    /// stderr of every run so far, for failure messages.
    var stderrText: String {
        guard starts > 0 else { return "" }
        return (1...starts).map { "--- run \($0) stderr ---\n" + ITChild.readFile("\(directory)/stderr.\($0).log") }
            .joined(separator: "\n")
    }

    var currentStderr: String { child?.stderr ?? "" }
}
