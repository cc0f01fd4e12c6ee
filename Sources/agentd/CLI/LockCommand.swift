import AgentdClient
import ArgumentParser
import Glibc

/// `agentd lock KEY -- CMD`: run a command while holding an exclusive lock, as flock(1) does
/// for files.
struct LockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock",
        abstract: "Run a command while holding the exclusive lock on KEY.",
        discussion: """
        Takes the lock (tied to this process: it is freed the moment agentd lock ends, even \
        by SIGKILL), runs CMD with AGENTD_LOCK_KEY, AGENTD_LOCK_LEASE_ID and \
        AGENTD_FENCING_TOKEN in its environment, heartbeats the lock every third of its TTL, \
        forwards SIGINT, SIGTERM and SIGHUP to CMD, releases the lock when CMD exits and exits \
        with CMD's status. CMD dies if agentd lock is killed. If the lock is lost (a heartbeat \
        refused, the daemon gone), CMD gets SIGTERM and agentd lock exits 75.

        Exit status: CMD's; 75 if the lock was not obtained within --wait or was lost; 1, 64 \
        or 69 as every command.
          agentd lock file:src/lib.rs --wait 30 -- cargo fmt
          agentd lock db:migrations -- sh -c 'migrate --fencing-token "$AGENTD_FENCING_TOKEN"'
        """
    )

    @Argument(help: "The resource key, e.g. file:src/lib.rs.")
    var key: String

    @Option(help: ArgumentHelp("Seconds the lock lives without a heartbeat (heartbeats keep it while CMD runs).", valueName: "secs"))
    var ttl: Int64 = 60

    @Option(help: ArgumentHelp("Seconds to wait for the lock when it is held (0: try once).", valueName: "secs"))
    var wait: Double = 0

    @Option(help: ArgumentHelp("The lock's owner, shown by agentd locks (default: CMD[pid]).", valueName: "name"))
    var owner: String?

    @Option(help: ArgumentHelp("The lock's provider, shown by agentd locks (e.g. openai, anthropic).", valueName: "name"))
    var provider: String?

    @OptionGroup var connection: ConnectionOptions

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command to run, after --.", valueName: "cmd"))
    var command: [String] = []

    func validate() throws {
        if command.isEmpty { throw ValidationError("give the command to run after --, e.g. agentd lock \(key) -- make") }
        if ttl < 1 || ttl > 315_360_000 { throw ValidationError("--ttl must be between 1 and 315360000 seconds") }
        if wait < 0 || wait > 315_360_000 { throw ValidationError("--wait must be between 0 and 315360000 seconds") }
    }

    func run() throws {
        Signals.block()
        // Before the command runs, a signal ends agentd lock (a lock already granted goes with
        // the connection); once it runs, signals are the command's to act on.
        let running = Locked<ChildProcess?>(nil)
        Signals.handle { signal, sentByAProcess in
            let child = running.withValue { $0 }
            guard let child else { Glibc.exit(128 + signal) }
            if sentByAProcess { child.signal(signal) }
        }
        let daemon = try connection.connect()
        var params: JSONObject = members([
            "resource_key": .string(key),
            "owner": .string(owner ?? "\(basename(command[0]))[\(getpid())]"),
            "ttl_secs": .int(ttl),
            "release_on_disconnect": true,
        ])
        if let provider { params["provider"] = .string(provider) }
        if wait > 0 { params["wait_ms"] = .int(Int64((wait * 1000).rounded())) }
        let lock = try daemon.call("AcquireResourceLock", .object(params))
        guard !lock.isNull, let leaseId = lock["lease_id"]?.stringValue else {
            let within = wait == 0 ? "" : " within " + (wait < 60 && wait != wait.rounded() ? "\(wait)s" : Time.duration(wait))
            throw CLIFailure("lock \(key) not obtained\(within): \(holder(daemon))",
                             status: ExitStatus.notObtained)
        }
        let token = lock["fencing_token"]?.intValue.map { String($0) } ?? ""
        let child = try running.withValue { running -> ChildProcess in
            let variables = ["AGENTD_LOCK_KEY": key, "AGENTD_LOCK_LEASE_ID": leaseId, "AGENTD_FENCING_TOKEN": token]
                .merging(connection.childEnvironment) { mine, _ in mine }
            let child = try ChildProcess.spawn(command, environment: ChildProcess.environment(adding: variables))
            running = child
            return child
        }

        // Set once: why the lock was lost, or that the command has ended (nil reason).
        let ending = Locked<(ended: Bool, lost: String?)>((false, nil))
        func lose(_ why: String) {
            let first = ending.withValue { state -> Bool in
                guard !state.ended && state.lost == nil else { return false }
                state.lost = why
                return true
            }
            if first { child.signal(SIGTERM) }
        }
        let heartbeat = Repeater(every: Double(ttl) / 3) {
            do {
                try daemon.call("HeartbeatResourceLock", ["resource_key": .string(key), "lease_id": .string(leaseId),
                                                          "ttl_secs": .int(ttl)])
                return true
            } catch {
                lose("\(error)")
                return false
            }
        }
        daemon.onClose { lose("\($0)") }

        let status = child.wait()
        let lost = ending.withValue { state -> String? in
            state.ended = true
            return state.lost
        }
        heartbeat.stop()
        if let lost {
            throw CLIFailure("lost the lock on \(key) (\(lost)); \(command[0]) was sent SIGTERM", status: ExitStatus.notObtained)
        }
        _ = try? daemon.call("ReleaseResourceLock", ["resource_key": .string(key), "lease_id": .string(leaseId)])
        daemon.close()
        if status.exitStatus != 0 { throw ExitCode(status.exitStatus) }
    }

    /// "held by OWNER (fencing token N, expires in 42s)", as well as can be told.
    private func holder(_ daemon: AgentdConnection) -> String {
        guard let locks = try? daemon.call("ListResourceLocks", ["prefix": .string(key)])["locks"]?.arrayValue,
              let held = locks.first(where: { $0["resource_key"]?.stringValue == key }) else { return "it is held" }
        var details: [String] = []
        if let token = held["fencing_token"]?.intValue { details.append("fencing token \(token)") }
        if let expires = held["lease_expires_at"]?.doubleValue { details.append("expires \(Time.until(expires))") }
        return "held by \(held["owner"]?.stringValue ?? "?") (\(details.joined(separator: ", ")))"
    }
}

func basename(_ path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
}
