import AgentdClient
import ArgumentParser
import Glibc

/// `agentd work TASK -- CMD`: turn any command into a worker of a task's DAG.
struct WorkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "work",
        abstract: "Work through a task's nodes, running a command for each.",
        discussion: """
        Loop: take the next runnable node (waiting for one), run CMD with the lease and its \
        context (the AcquireNextNode result) as JSON on stdin and AGENTD_TASK_ID, \
        AGENTD_NODE_ID, AGENTD_NODE_NAME (when the node has a name), AGENTD_LEASE_ID and \
        AGENTD_SOCKET_PATH (over the network: AGENTD_CONNECT, AGENTD_TOKEN_FILE and \
        AGENTD_CA_FILE) in its environment, heartbeat the lease while it runs, then:
          exit 0    complete the node with CMD's stdout: its JSON value if it is
                    JSON, else {"output": "<text>"} (at most 256 KiB)
          exit n    fail it with {"exit_code": n, "stderr": "<last 4 KiB>"}
        Stops when the task is no longer ACTIVE, after one node a job with --once, or when \
        nothing became runnable within --wait. Leases are tied to this process: if it is \
        killed, its commands die and their nodes go back to PENDING at once. SIGINT/SIGTERM \
        stop taking nodes and are passed to running commands; a node whose command did not \
        exit 0 after that is left to be taken again.

        Exit status: 0 every node it ran completed, 1 one failed (or its lease was lost), \
        75 --once found nothing to do; 64 and 69 as every command.
          agentd work $TASK --jobs 4 -- ./agent.sh
        """
    )

    @Argument(help: "The task: its id or short id.")
    var task: String

    @Option(help: ArgumentHelp("The lease owner, shown by agentd status (default: CMD[pid]).", valueName: "name"))
    var owner: String?

    @Option(name: [.short, .long], help: "Run this many nodes at once.")
    var jobs: Int = 1

    @Option(help: ArgumentHelp("Stop when nothing became runnable within this many seconds (default: wait while the task is ACTIVE).",
                               valueName: "secs"))
    var wait: Double?

    @Flag(help: "Run one node (one a job with --jobs) and stop; exit 75 if there was none.")
    var once = false

    @Option(help: ArgumentHelp("Lease length in seconds; heartbeats renew it every third (default: the daemon's node timeout).",
                               valueName: "secs"))
    var leaseTtl: Int64?

    @OptionGroup var connection: ConnectionOptions

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command to run for each node, after --.", valueName: "cmd"))
    var command: [String] = []

    func validate() throws {
        if command.isEmpty { throw ValidationError("give the command to run after --, e.g. agentd work \(task) -- ./agent.sh") }
        if !(1...1024).contains(jobs) { throw ValidationError("--jobs must be between 1 and 1024") }
        if let wait, wait < 0 || wait > 315_360_000 { throw ValidationError("--wait must be between 0 and 315360000 seconds") }
        if let leaseTtl, leaseTtl < 1 || leaseTtl > 315_360_000 {
            throw ValidationError("--lease-ttl must be between 1 and 315360000 seconds")
        }
    }

    func run() throws {
        Signals.block()
        // Until the workers start, a signal ends agentd work at once (the signals are blocked,
        // so without a handler a hung connect or call could not be interrupted).
        let state = WorkState(progress: isatty(STDERR_FILENO) == 1, once: once)
        let started = Locked(false)
        Signals.handle { signal, sentByAProcess in
            guard started.withValue({ $0 }) else { Glibc.exit(128 + signal) }
            state.stop(signal: signal, forward: sentByAProcess)
        }
        let daemon = try connection.connect()
        let taskId = try TaskRef.resolve(task, on: daemon)
        let status = try daemon.call("TaskStatus", ["task_id": .string(taskId)])
        let ttl = try leaseTtl ?? daemon.call("Health")["running_timeout_secs"]?.intValue ?? 300
        daemon.close()
        let taskStatus = status["task"]?["status"]?.stringValue ?? "ACTIVE"
        if taskStatus != "ACTIVE" {
            complain("task \(taskId) is \(taskStatus): nothing to do")
            if once { throw ExitCode(ExitStatus.notObtained) }
            return
        }

        let plan = WorkPlan(taskId: taskId, owner: owner ?? "\(basename(command[0]))[\(getpid())]", command: command,
                            daemonEnvironment: connection.childEnvironment, connect: { [connection] in try connection.connect() }, waitMs: wait.map { Int64(($0 * 1000).rounded()) },
                            once: once, leaseTtl: ttl, explicitLeaseTtl: leaseTtl != nil)
        started.withValue { $0 = true }
        let workers = (0..<jobs).map { slot in
            JoinableThread { Worker(plan: plan, state: state, slot: slot).run() }
        }
        workers.forEach { $0.join() }
        throw ExitCode(state.finish())
    }
}
