import AgentdClient
import Glibc

/// One job of `agentd work`: its own connection (so that closing it ends its wait without
/// touching the leases of the others), taking nodes one after the other.
struct Worker {
    let plan: WorkPlan
    let state: WorkState
    let slot: Int

    /// How long one parked acquire waits when --wait was not given; then the worker asks again.
    static let idleWaitMs: Int64 = 30_000
    /// The first wait after the task was seen ACTIVE is short: should the task end in the
    /// instant between that look and the acquire arriving, the daemon would keep the acquire
    /// parked on a finished task (it may be revived), and this bounds how long.
    static let firstWaitMs: Int64 = 2_000

    func run() {
        defer { state.slotDone(slot) }
        let daemon: AgentdConnection
        do {
            daemon = try plan.connect()
        } catch {
            return state.fail(CLIFailure(error))
        }
        defer { daemon.close() }
        var ran = 0
        var waits = 0
        while !(plan.once && ran > 0) {
            guard state.idle(slot, on: daemon) else { return }
            // A runnable node, if there is one now.
            guard var reply = acquire(daemon, waitMs: 0) else { return }
            if reply.result.isNull {
                // Nothing runnable. A node this process runs keeps the task ACTIVE, and its end
                // answers a parked acquire; otherwise the task may already be over.
                if !state.othersRunning(besides: slot) && !taskIsActive(daemon) {
                    return state.taskEnded()
                }
                let waitMs = plan.waitMs ?? (waits == 0 ? Worker.firstWaitMs : Worker.idleWaitMs)
                guard let parked = acquire(daemon, waitMs: waitMs) else { return }
                reply = parked
                if reply.result.isNull {
                    if plan.waitMs != nil { return }   // nothing became runnable within --wait
                    waits += 1
                    continue
                }
            }
            ran += 1
            waits = 0
            NodeRun(plan: plan, state: state, slot: slot, daemon: daemon, acquired: reply).run()
        }
    }

    /// AcquireNextNode; nil when this worker should end (the task closed or gone, the run
    /// ending, or an error that ends it).
    private func acquire(_ daemon: AgentdConnection, waitMs: Int64) -> AgentdReply? {
        var params: JSONObject = members([
            "task_id": .string(plan.taskId), "lease_owner": .string(plan.owner), "release_on_disconnect": true,
        ])
        if waitMs > 0 { params["wait_ms"] = .int(waitMs) }
        if plan.explicitLeaseTtl { params["lease_ttl_secs"] = .int(plan.leaseTtl) }
        do {
            return try daemon.callReply("AcquireNextNode", .object(params))
        } catch let error as AgentdError where error.reason == "TASK_CLOSED" || error.reason == "TASK_NOT_FOUND" {
            state.taskEnded()   // cancelled or deleted
            return nil
        } catch {
            if !state.isEnding { state.fail(CLIFailure(error)) }
            return nil
        }
    }

    private func taskIsActive(_ daemon: AgentdConnection) -> Bool {
        guard let status = try? daemon.call("TaskStatus", ["task_id": .string(plan.taskId)]) else { return false }
        return status["task"]?["status"]?.stringValue == "ACTIVE"
    }
}
