import AgentdClient
import Glibc

/// How a child ended.
enum ChildStatus: Equatable {
    case exited(Int32)
    case signaled(Int32)

    /// As a shell reports it: the exit code, or 128 + the signal.
    var exitStatus: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal): return 128 + signal
        }
    }
}

/// A command run through the exec wrapper (see ExecWrapper): it dies with the thread that
/// spawned it. Signals are only ever sent to it while it has not been reaped, so a pid the
/// system has reused is never hit.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let state = Locked(false)   // reaped

    private init(pid: pid_t) { self.pid = pid }

    /// Spawns `command` with `environment`; a nil descriptor is inherited.
    static func spawn(_ command: [String], environment: [String: String],
                      stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (fd, target) in [(stdin, Int32(0)), (stdout, 1), (stderr, 2)] {
            if let fd { posix_spawn_file_actions_adddup2(&actions, fd, target) }
        }
        // The command starts with no signal blocked and default dispositions for the signals
        // the CLI handles or ignores itself.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let arguments = ["agentd", ExecWrapper.marker, String(getpid())] + command
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        // /proc/self/exe: this very binary, even if the file was replaced since it started.
        let rc = posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, argv, envp)
        guard rc == 0 else { throw CLIFailure("cannot start \(command[0]): \(String(cString: strerror(rc)))") }
        return ChildProcess(pid: pid)
    }

    /// Waits for the child to end and reaps it.
    func wait() -> ChildStatus {
        // Wait without reaping, mark it, then reap: signal() never races with pid reuse.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
        state.withValue { $0 = true }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f)
    }

    /// True once the child has exited (a zombie not yet reaped counts), without reaping it.
    var hasEnded: Bool {
        guard let file = fopen("/proc/\(pid)/stat", "r") else { return true }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 512)
        guard fgets(&line, Int32(line.count), file) != nil else { return true }
        let text = String(cString: line)
        // "PID (COMMAND) STATE ...": the command may hold spaces and parentheses, the state
        // follows the last ')'.
        guard let close = text.lastIndex(of: ")") else { return true }
        let state = text[text.index(after: close)...].drop { $0 == " " }.first
        return state == "Z" || state == "X"
    }

    /// Sends `signal` if the child has not ended yet.
    func signal(_ signal: Int32) {
        state.withValue { reaped in if !reaped { kill(pid, signal) } }
    }

    /// The environment of this process with `extra` on top.
    static func environment(adding extra: [String: String]) -> [String: String] {
        var environment = AgentdEnvironment.processEnvironment()
        for (key, value) in extra { environment[key] = value }
        return environment
    }
}
