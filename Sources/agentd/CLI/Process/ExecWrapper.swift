import CProcess
import Glibc

/// How a command run by `agentd lock` or `agentd work` dies with them, even when they are
/// killed with SIGKILL and can do nothing about it.
///
/// Linux's parent-death signal (prctl PR_SET_PDEATHSIG) must be set by the child itself,
/// after fork and before exec. posix_spawn has no hook for that, and a plain fork() in a
/// process that already runs threads (the connection's reader, the heartbeats) may only call
/// async-signal-safe functions before exec, which Swift code cannot promise. So the child
/// is first this same binary, spawned with posix_spawn as
/// `agentd _exec-child PARENT_PID CMD ARGS...`: a fresh, single-threaded process that arms the
/// signal, checks that its parent has not already gone (the signal only covers a death after
/// prctl), and then execs CMD in its own place. The signal survives the exec, so CMD itself
/// gets SIGKILL when the thread that spawned it ends (the kernel ties it to that thread, so
/// the spawning thread waits for the child). The daemon, seeing the connection close, frees
/// the lock or the leases at once.
enum ExecWrapper {
    static let marker = "_exec-child"

    /// `arguments` are PARENT_PID CMD ARGS...; never returns.
    static func run(_ arguments: [String]) -> Never {
        guard arguments.count >= 2, let parent = pid_t(arguments[0]) else {
            complain("\(marker) is internal: it takes PARENT_PID CMD [ARGS...]")
            exit(ExitStatus.usage)
        }
        if agentd_set_parent_death_signal(SIGKILL) != 0 {
            complain("cannot arm the parent-death signal: \(String(cString: strerror(errno)))")
            exit(126)
        }
        // Our parent died before prctl: nobody holds the lock or lease this command needs.
        if getppid() != parent { exit(126) }
        let command = Array(arguments.dropFirst())
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) }
        argv.append(nil)
        execvp(command[0], argv)
        let error = errno
        complain("cannot run \(command[0]): \(String(cString: strerror(error)))")
        // As shells report it: 127 not found, 126 found but not runnable.
        exit(error == ENOENT ? 127 : 126)
    }
}
