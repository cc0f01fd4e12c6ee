import AgentdClient
import Glibc

/// One job of `agentd work`: its own connection (so that closing it ends its wait without
/// touching the leases of the others), taking nodes one after the other.
struct Worker {
    let plan: WorkPlan
    let state: WorkState
    let slot: Int

    /// How long one acquire waits when --wait was not given. With nothing runnable the daemon
    /// answers a parked acquire null as soon as the task stops being ACTIVE; past this the
    /// worker asks again.
    static let idleWaitMs: Int64 = 60_000

    func run() {
        defer { state.slotDone(slot) }
        let daemon: AgentdConnection
        do {
            daemon = try AgentdConnection(socketPath: plan.socketPath)
        } catch {
            return state.fail(CLIFailure(error))
        }
        defer { daemon.close() }
        var ran = 0
        while !(plan.once && ran > 0) {
            guard state.idle(slot, on: daemon) else { return }
            var params: JSONObject = [
                "task_id": .string(plan.taskId), "lease_owner": .string(plan.owner),
                "wait_ms": .int(plan.waitMs ?? Worker.idleWaitMs), "release_on_disconnect": true,
            ]
            if plan.explicitLeaseTtl { params["lease_ttl_secs"] = .int(plan.leaseTtl) }
            let reply: AgentdReply
            do {
                reply = try daemon.callReply("AcquireNextNode", .object(params))
            } catch let error as AgentdError where error.reason == "TASK_CLOSED" || error.reason == "TASK_NOT_FOUND" {
                return   // cancelled or deleted: the task is over
            } catch {
                if !state.isStopping { state.fail(CLIFailure(error)) }
                return
            }
            if reply.result.isNull {
                // Nothing within --wait; or, without it, the task may have ended.
                if plan.waitMs != nil || !taskIsActive(daemon) { return }
                continue
            }
            ran += 1
            NodeRun(plan: plan, state: state, slot: slot, daemon: daemon, acquired: reply).run()
        }
    }

    private func taskIsActive(_ daemon: AgentdConnection) -> Bool {
        guard let status = try? daemon.call("TaskStatus", ["task_id": .string(plan.taskId)]) else { return false }
        return status["task"]?["status"]?.stringValue == "ACTIVE"
    }
}
