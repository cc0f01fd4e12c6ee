import AgentdClient
import Glibc

/// An agentd the bench starts itself (dag-scale restarts), with a private HOME so that no user
/// configuration leaks in. Its output goes to `log` beside its database.
final class DaemonProcess {
    /// Daemons still running, killed if the bench fails.
    private static var started: Set<Int32> = []

    let binary: String
    let socketPath: String
    let databasePath: String
    let sync: String
    let home: String
    private(set) var pid: Int32 = 0

    init(binary: String, socketPath: String, databasePath: String, sync: String, home: String) {
        self.binary = binary
        self.socketPath = socketPath
        self.databasePath = databasePath
        self.sync = sync
        self.home = home
    }

    var logPath: String { databasePath + ".log" }

    /// Spawns the daemon and waits until it answers Health; returns the seconds that took.
    func start() -> Double {
        precondition(pid == 0, "daemon already running")
        let began = monotonicNanos()
        let arguments = [binary, "serve", "--socket", socketPath, "--db", databasePath, "--sync", sync]
        let environment = ["HOME=\(home)", "AGENTD_HOME=\(home)", "PATH=/usr/bin:/bin"]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, binary, &actions, nil, &argv, &envp)
        guard status == 0 else { fail("cannot start \(binary): \(String(cString: strerror(status)))") }
        pid = child
        DaemonProcess.started.insert(child)

        // Poll until a Health request is answered: the daemon has loaded its database by then.
        while true {
            var exitStatus: Int32 = 0
            if waitpid(pid, &exitStatus, WNOHANG) == pid {
                DaemonProcess.started.remove(pid)
                pid = 0
                fail("agentd exited at start; see \(logPath)")
            }
            if let client = try? AgentdConnection(socketPath: socketPath) {
                defer { client.close() }
                do { try client.call("Health") } catch { fail("Health: \(error)") }
                break
            }
            sleepMillis(2)
            if monotonicNanos() - began > 600_000_000_000 { fail("agentd did not answer within 600 s") }
        }
        return Double(monotonicNanos() - began) / 1e9
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 60 s); returns the seconds the stop took.
    @discardableResult
    func stop() -> Double {
        guard pid > 0 else { return 0 }
        let began = monotonicNanos()
        kill(pid, SIGTERM)
        var exitStatus: Int32 = 0
        while waitpid(pid, &exitStatus, WNOHANG) == 0 {
            if monotonicNanos() - began > 60_000_000_000 {
                warn("bench: agentd did not stop within 60 s of SIGTERM; killing it")
                kill(pid, SIGKILL)
                waitpid(pid, &exitStatus, 0)
                break
            }
            sleepMillis(1)
        }
        DaemonProcess.started.remove(pid)
        pid = 0
        return Double(monotonicNanos() - began) / 1e9
    }

    /// Removes the database and its companions.
    func removeFiles() {
        for suffix in ["", "-wal", "-shm", ".lock", ".log"] { unlink(databasePath + suffix) }
    }

    static func killAllStarted() {
        for pid in started { kill(pid, SIGKILL) }
        started.removeAll()
    }

    /// A bench stopped by SIGINT or SIGTERM takes the daemons it started down with it.
    static func stopStartedOnSignals() {
        for signum in [SIGINT, SIGTERM] {
            signal(signum) { received in
                for pid in DaemonProcess.started { kill(pid, SIGTERM) }
                _exit(128 + received)
            }
        }
    }
}
