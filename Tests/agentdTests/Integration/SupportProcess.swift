// Integration test support: child processes (the daemon, its CLI, sqlite3) through
// posix_spawn, so that the tests control signals, file descriptors and reaping exactly.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a child ended.
enum ITExit: Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    init(waitStatus status: Int32) {
        if status & 0x7f == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(status & 0x7f)
        }
    }

    var description: String {
        switch self {
        case .exited(let code): return "exit \(code)"
        case .signaled(let signal): return "signal \(signal)"
        }
    }
}

/// A spawned child process with stdout and stderr going to files.
final class ITChild {
    let pid: pid_t
    let executable: String
    let arguments: [String]
    let stdoutPath: String
    let stderrPath: String
    private(set) var exit: ITExit?

    private init(pid: pid_t, executable: String, arguments: [String], stdoutPath: String, stderrPath: String) {
        self.pid = pid
        self.executable = executable
        self.arguments = arguments
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
    }

    /// Spawn `executable arguments` with exactly `environment`, stdin from /dev/null.
    /// Signal dispositions and the signal mask are reset to defaults in the child (the
    /// test process ignores SIGPIPE; the daemon must cope with it on its own).
    static func spawn(_ executable: String, _ arguments: [String], environment: [String: String],
                      stdoutPath: String, stderrPath: String, stdinPath: String = "/dev/null") throws -> ITChild {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw ITError("posix_spawn \(executable) failed: \(String(cString: strerror(rc)))")
        }
        return ITChild(pid: pid, executable: executable, arguments: arguments,
                       stdoutPath: stdoutPath, stderrPath: stderrPath)
    }

    /// Reap the child if it has ended; true while it still runs.
    var isRunning: Bool {
        if exit != nil { return false }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid {
            exit = ITExit(waitStatus: status)
            return false
        }
        if rc < 0 && errno == ECHILD {
            exit = .exited(-1) // reaped by someone else: should not happen
            return false
        }
        return true
    }

    /// Wait (bounded poll) for the child to end; nil if it is still running at the deadline.
    @discardableResult
    func waitForExit(timeout: TimeInterval) -> ITExit? {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning {
            if Date() > deadline { return nil }
            usleep(5_000)
        }
        return exit
    }

    func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// SIGKILL and reap. Safe to call at any time.
    func killAndReap() {
        guard isRunning else { return }
        kill(pid, SIGKILL)
        _ = waitForExit(timeout: 10)
    }

    var stdout: String { ITChild.readFile(stdoutPath) }
    var stderr: String { ITChild.readFile(stderrPath) }

    static func readFile(_ path: String) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// The result of running a short-lived command to completion.
struct ITCommandResult {
    let exit: ITExit
    let stdout: String
    let stderr: String
}

/// Run a command to completion (bounded) with output captured in `directory`.
func itRun(_ executable: String, _ arguments: [String], environment: [String: String],
           directory: String, stdinPath: String = "/dev/null", timeout: TimeInterval = 20) throws -> ITCommandResult {
    let tag = UUID().uuidString.prefix(8)
    let outPath = "\(directory)/cmd-\(tag).out"
    let errPath = "\(directory)/cmd-\(tag).err"
    let child = try ITChild.spawn(executable, arguments, environment: environment,
                                  stdoutPath: outPath, stderrPath: errPath, stdinPath: stdinPath)
    guard let exit = child.waitForExit(timeout: timeout) else {
        child.killAndReap()
        throw ITError("\(executable) \(arguments) did not finish within \(timeout) s; stderr: \(child.stderr)")
    }
    return ITCommandResult(exit: exit, stdout: child.stdout, stderr: child.stderr)
}

/// Find an executable on PATH (or one of a few usual places).
func itWhich(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let dirs = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin", "/bin"]
    for dir in dirs where !dir.isEmpty {
        let candidate = "\(dir)/\(name)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}
