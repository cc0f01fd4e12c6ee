import AgentdClient
import Glibc

/// What `agentd work` must know before it starts its workers.
struct WorkPlan {
    var taskId: String
    var owner: String
    var command: [String]
    /// How the commands reach the daemon: AGENTD_SOCKET_PATH, or AGENTD_CONNECT and its files.
    var daemonEnvironment: [String: String]
    /// A new connection for each worker.
    var connect: () throws -> AgentdConnection
    /// --wait in ms; nil: wait while the task is ACTIVE.
    var waitMs: Int64?
    var once: Bool
    var leaseTtl: Int64
    /// Whether --lease-ttl was given (then it is sent with each acquire and heartbeat).
    var explicitLeaseTtl: Bool
}

/// The workers' shared state: counts, who runs what, stopping, the progress line.
final class WorkState: @unchecked Sendable {
    enum Slot {
        /// Waiting for a node on this connection: closing it ends the wait.
        case idle(AgentdConnection)
        case running(ChildProcess, label: String)
        case done
    }

    private struct Inner {
        var slots: [Int: Slot] = [:]
        var completed = 0
        var failed = 0
        var ran = 0
        var stopSignal: Int32?
        /// The task is no longer ACTIVE: every worker ends, as if it had found nothing.
        var taskOver = false
        /// An error that ends the whole run (the daemon gone, an unexpected refusal).
        var fatal: CLIFailure?
    }

    private let inner = Locked(Inner())
    private let progress: Bool
    private let once: Bool

    /// `progress`: draw a progress line on stderr (a TTY); `once`: running nothing is exit 75.
    init(progress: Bool, once: Bool) {
        self.progress = progress
        self.once = once
    }

    /// Interrupted by a signal or an error (not merely finished).
    var isStopping: Bool { inner.withValue { $0.stopSignal != nil || $0.fatal != nil } }

    /// Whether the run is ending for any reason.
    var isEnding: Bool { inner.withValue { $0.stopSignal != nil || $0.fatal != nil || $0.taskOver } }

    /// Whether a worker other than `slot` is running a node (which keeps the task ACTIVE).
    func othersRunning(besides slot: Int) -> Bool {
        inner.withValue { state in
            state.slots.contains { key, value in
                if case .running = value { return key != slot } else { return false }
            }
        }
    }

    /// The slot waits for a node on `connection`; false if the run is ending.
    func idle(_ slot: Int, on connection: AgentdConnection) -> Bool {
        inner.withValue { state in
            guard state.stopSignal == nil && state.fatal == nil && !state.taskOver else { return false }
            state.slots[slot] = .idle(connection)
            return true
        }
    }

    /// The slot got a node; false if the run is stopping (then the node is not run).
    func starting(_ slot: Int, label: String, run: () throws -> ChildProcess) rethrows -> ChildProcess? {
        let child: ChildProcess? = try inner.withValue { state in
            guard state.stopSignal == nil && state.fatal == nil else { return nil }
            let child = try run()
            state.slots[slot] = .running(child, label: label)
            state.ran += 1
            return child
        }
        drawProgress()
        return child
    }

    enum Outcome { case completed, failed(String), interrupted }

    func finished(_ slot: Int, _ outcome: Outcome) {
        inner.withValue { state in
            state.slots[slot] = .done
            switch outcome {
            case .completed: state.completed += 1
            case .failed: state.failed += 1
            case .interrupted: break
            }
        }
        if case .failed(let message) = outcome { say(message) }
        drawProgress()
    }

    func slotDone(_ slot: Int) {
        inner.withValue { $0.slots[slot] = .done }
    }

    /// Ends the run: no worker takes another node; `forward` passes the signal on to the
    /// running commands (unless the terminal already sent it to them).
    func stop(signal: Int32, forward: Bool) {
        let toClose: [AgentdConnection] = inner.withValue { state in
            if state.stopSignal == nil { state.stopSignal = signal }
            var idle: [AgentdConnection] = []
            for (_, slot) in state.slots {
                switch slot {
                case .idle(let connection): idle.append(connection)
                case .running(let child, _): if forward { child.signal(signal) }
                case .done: break
                }
            }
            return idle
        }
        toClose.forEach { $0.close() }
    }

    /// Ends the run because of an error every worker would meet.
    func fail(_ failure: CLIFailure) {
        endIdle { if $0.fatal == nil { $0.fatal = failure } }
    }

    /// Ends the run because the task is no longer ACTIVE: the workers waiting for a node stop
    /// waiting (the daemon would keep them parked on a finished task, which may be revived).
    func taskEnded() {
        endIdle { $0.taskOver = true }
    }

    /// Applies `change`, then closes the connections of the workers waiting for a node: their
    /// wait ends with an error they take as the end of the run. They hold no lease.
    private func endIdle(_ change: (inout Inner) -> Void) {
        let toClose: [AgentdConnection] = inner.withValue { state in
            change(&state)
            return state.slots.values.compactMap { if case .idle(let c) = $0 { return c } else { return nil } }
        }
        toClose.forEach { $0.close() }
    }

    /// The exit status, after every worker has ended.
    func finish() -> Int32 {
        let state = inner.withValue { $0 }
        if progress {
            fputs("\r\u{1B}[K", stderr)
            fputs("agentd work: \(state.completed) completed, \(state.failed) failed\n", stderr)
        }
        if let fatal = state.fatal {
            complain(fatal.message)
            return fatal.status
        }
        if let signal = state.stopSignal { return 128 + signal }
        if state.failed > 0 { return ExitStatus.refused }
        return state.ran == 0 && once ? ExitStatus.notObtained : ExitStatus.ok
    }

    /// A message on its own line, clear of the progress line.
    func say(_ message: String) {
        inner.withValue { _ in
            if progress { fputs("\r\u{1B}[K", stderr) }
            complain(message)
        }
    }

    private func drawProgress() {
        guard progress else { return }
        inner.withValue { state in
            let running = state.slots.values.compactMap { slot -> String? in
                if case .running(_, let label) = slot { return label } else { return nil }
            }.sorted()
            var line = "agentd work: \(state.completed) completed, \(state.failed) failed"
            if !running.isEmpty { line += ", running " + running.joined(separator: ", ") }
            fputs("\r\u{1B}[K" + shortened(line, to: 150), stderr)
        }
    }
}
