import AgentdBase
/// Why a well-formed request was refused. `reason` is the stable name clients branch on (error.data.reason);
/// `message` keeps the original's text, which clients may show.
package struct CoordinatorError: Error, Equatable {
    package enum Reason: String {
        case taskNotFound = "TASK_NOT_FOUND"
        case nodeNotFound = "NODE_NOT_FOUND"
        case nodeNotRunning = "NODE_NOT_RUNNING"
        case leaseMismatch = "LEASE_MISMATCH"
        case lockNotHeld = "LOCK_NOT_HELD"
        case invalidDAG = "INVALID_DAG"
        case taskClosed = "TASK_CLOSED"
        case invalidParams = "INVALID_PARAMS"
    }

    package var reason: Reason
    package var message: String

    package static func taskNotFound(_ task: UUID128) -> Self {
        .init(reason: .taskNotFound, message: "task not found: \(task.string)")
    }
    package static func nodeNotFound(_ node: UUID128, task: UUID128) -> Self {
        .init(reason: .nodeNotFound, message: "node not found: \(node.string) for task \(task.string)")
    }
    package static func nodeNotRunning(_ node: UUID128, task: UUID128) -> Self {
        .init(reason: .nodeNotRunning, message: "node \(node.string) for task \(task.string) is not RUNNING")
    }
    package static func cannotTransition(_ node: UUID128, from status: NodeStatus, to target: NodeStatus) -> Self {
        .init(reason: status == .running ? .leaseMismatch : .nodeNotRunning,
              message: "invalid state: node \(node.string) cannot transition from \(status.name) to \(target.name)")
    }
    package static func requiresRunningLease(_ node: UUID128, task: UUID128) -> Self {
        .init(reason: .leaseMismatch,
              message: "invalid state: node \(node.string) for task \(task.string) requires the current RUNNING lease")
    }
    package static func invalidDAG(_ text: String) -> Self {
        .init(reason: .invalidDAG, message: "invalid state: \(text)")
    }
    package static func taskClosed(_ task: UUID128) -> Self {
        .init(reason: .taskClosed, message: "invalid state: task \(task.string) is CANCELLED")
    }
    package static func taskStillActive(_ task: UUID128) -> Self {
        .init(reason: .taskClosed,
              message: "invalid state: task \(task.string) is ACTIVE; only a finished or cancelled task can be deleted")
    }
    package static func cannotRetry(_ node: UUID128, from status: NodeStatus) -> Self {
        .init(reason: .nodeNotRunning,
              message: "invalid state: node \(node.string) cannot transition from \(status.name) to PENDING")
    }
    package static func lockNeedsActiveLease(_ key: String) -> Self {
        .init(reason: .lockNotHeld, message: "invalid state: resource lock \(key) requires the current active lease")
    }
    package static func lockNeedsLease(_ key: String) -> Self {
        .init(reason: .lockNotHeld, message: "invalid state: resource lock \(key) requires the current lease")
    }
}
