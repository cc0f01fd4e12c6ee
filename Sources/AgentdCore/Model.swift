import AgentdBase
/// The four states of a DAG node, as the original names them on the wire and in `dag_nodes.status`.
package enum NodeStatus: UInt8, CaseIterable {
    case pending, running, completed, failed

    /// The name as a literal: the answers and the rows write it without making a String.
    package var staticName: StaticString {
        switch self {
        case .pending: return "PENDING"
        case .running: return "RUNNING"
        case .completed: return "COMPLETED"
        case .failed: return "FAILED"
        }
    }

    package var name: String { staticName.description }

    package init?(name: String) {
        switch name {
        case "PENDING": self = .pending
        case "RUNNING": self = .running
        case "COMPLETED": self = .completed
        case "FAILED": self = .failed
        default: return nil
        }
    }
}

/// Whether a row must reach the database at the end of the loop turn, and how.
package enum PersistState: UInt8 {
    case clean
    case dirty      // exists on disk; UPDATE it
    case inserted   // new this turn; INSERT it (later changes this turn ride along)
}

/// The lease a RUNNING node is held under. A class, so that a node that is not running (nearly
/// all of them, in a big DAG) pays one pointer for it instead of the whole record.
package final class Lease {
    package var id: UUID128
    package var owner: String
    package var acquiredAtSecs: Int64
    package var expiresAtMs: Int64
    package var deadline: DeadlineHandle
    /// The connection whose close expires this lease (release_on_disconnect), or 0.
    package var boundConnection: UInt64

    package init(id: UUID128, owner: String, acquiredAtSecs: Int64, expiresAtMs: Int64, deadline: DeadlineHandle,
         boundConnection: UInt64 = 0) {
        self.id = id
        self.owner = owner
        self.acquiredAtSecs = acquiredAtSecs
        self.expiresAtMs = expiresAtMs
        self.deadline = deadline
        self.boundConnection = boundConnection
    }
}

/// One node of a task's DAG. Kept in a contiguous array per task; other nodes refer to it by index.
package struct Node {
    package var id: UUID128
    package var status: NodeStatus = .pending
    /// Dependencies that are not COMPLETED yet; the node is runnable at 0 while PENDING.
    package var unfinishedDependencies: Int32 = 0
    /// Dependencies that are FAILED or blocked; a PENDING node with any is BLOCKED: it can never run.
    package var blockedDependencies: Int32 = 0
    package var dependencies = IndexList()
    package var dependents = IndexList()
    package var payloadSchema: [UInt8]
    /// The result (COMPLETED) or error payload (FAILED), compact JSON.
    package var result: [UInt8]? = nil
    package var lease: Lease? = nil
    package var updatedAtSecs: Int64
    package var attempts: Int32 = 0
    /// 0 means unlimited, as in the original.
    package var maxAttempts: Int32 = 0
    /// The client's name for the node, unique within its task, or nil.
    package var name: String? = nil
    package var persist: PersistState = .inserted
    /// Positions of this node's events in the task's journal, for ReadEvents by node.
    package var events: [Int32] = []

    /// PENDING but never runnable, because a dependency failed (directly or further up).
    package var isBlocked: Bool { status == .pending && blockedDependencies > 0 }
}

/// One journal entry. `seq` rises by one per task, from 1.
package struct JournalEvent {
    package var id: UUID128
    package var seq: Int64
    package var node: Int32
    package var actionType: String
    package var payload: [UInt8]
    package var timestampMs: Int64
}

/// Where a task stands as a whole (`task.status`).
package enum TaskStatus: UInt8, CaseIterable {
    case active, completed, failed, cancelled

    package var name: String {
        switch self {
        case .active: return "ACTIVE"
        case .completed: return "COMPLETED"
        case .failed: return "FAILED"
        case .cancelled: return "CANCELLED"
        }
    }

    package init?(name: String) {
        guard let match = TaskStatus.allCases.first(where: { $0.name == name }) else { return nil }
        self = match
    }
}

/// A task: its goal and context, its DAG and its journal.
package final class TaskRecord {
    package let id: UUID128
    package let slot: Int32
    package let goal: String
    package let context: [UInt8]
    package let createdAtMs: Int64
    package var nodes: [Node] = []
    package var ready = ReadyQueue()
    package var events: [JournalEvent] = []
    /// Node count per NodeStatus.rawValue.
    package var counts: [Int] = [0, 0, 0, 0]
    /// PENDING nodes that can never run (a subset of counts[pending]).
    package var blockedCount = 0
    /// Named nodes by name, so that a duplicate is found without a scan.
    package var nodesByName: [String: Int32] = [:]
    package var cancelled = false
    /// The status it was last filed under in the per-status task index.
    package var indexedStatus: TaskStatus = .active
    /// Parked AcquireNextNode and ReadEvents requests, in arrival order (waiter ids).
    package var acquireWaiters = WaiterQueue()
    package var eventWaiters = WaiterQueue()
    /// Answers being built from this task over several loop turns (usually none).
    package var snapshots: [TaskSnapshot] = []

    /// Derived from the counts, so it never needs a scan.
    package var status: TaskStatus {
        if cancelled { return .cancelled }
        let total = nodes.count
        if total > 0 && counts[Int(NodeStatus.completed.rawValue)] == total { return .completed }
        if counts[Int(NodeStatus.failed.rawValue)] > 0 && counts[Int(NodeStatus.running.rawValue)] == 0
            && counts[Int(NodeStatus.pending.rawValue)] == blockedCount {
            return .failed
        }
        return .active
    }

    package init(id: UUID128, slot: Int32, goal: String, context: [UInt8], createdAtMs: Int64) {
        self.id = id
        self.slot = slot
        self.goal = goal
        self.context = context
        self.createdAtMs = createdAtMs
    }
}

/// An exclusive lock on a resource key.
package struct ResourceLock {
    /// Kept with its hash, so that releasing and committing the lock do not hash the key again.
    package let lockKey: LockKey
    package var key: String { lockKey.text }
    package var leaseId: UUID128
    package var owner: String
    package var provider: String?
    package var taskId: UUID128?
    package var nodeId: UUID128?
    package var metadata: [UInt8]
    package var acquiredAtSecs: Int64
    package var expiresAtMs: Int64
    package var updatedAtSecs: Int64
    package var deadline: DeadlineHandle
    package var boundConnection: UInt64 = 0
    package var fencingToken: Int64 = 0

    package init(key: String, leaseId: UUID128, owner: String, provider: String?, taskId: UUID128?, nodeId: UUID128?,
                 metadata: [UInt8], acquiredAtSecs: Int64, expiresAtMs: Int64, updatedAtSecs: Int64,
                 deadline: DeadlineHandle, boundConnection: UInt64 = 0, fencingToken: Int64 = 0) {
        self.init(lockKey: LockKey(key), leaseId: leaseId, owner: owner, provider: provider, taskId: taskId,
                  nodeId: nodeId, metadata: metadata, acquiredAtSecs: acquiredAtSecs, expiresAtMs: expiresAtMs,
                  updatedAtSecs: updatedAtSecs, deadline: deadline, boundConnection: boundConnection,
                  fencingToken: fencingToken)
    }

    package init(lockKey: LockKey, leaseId: UUID128, owner: String, provider: String?, taskId: UUID128?,
                 nodeId: UUID128?, metadata: [UInt8], acquiredAtSecs: Int64, expiresAtMs: Int64,
                 updatedAtSecs: Int64, deadline: DeadlineHandle, boundConnection: UInt64 = 0, fencingToken: Int64 = 0) {
        self.lockKey = lockKey
        self.leaseId = leaseId
        self.owner = owner
        self.provider = provider
        self.taskId = taskId
        self.nodeId = nodeId
        self.metadata = metadata
        self.acquiredAtSecs = acquiredAtSecs
        self.expiresAtMs = expiresAtMs
        self.updatedAtSecs = updatedAtSecs
        self.deadline = deadline
        self.boundConnection = boundConnection
        self.fencingToken = fencingToken
    }
}

/// Where a node lives: the slot of its task and its index in that task's node array.
package struct NodeRef: Hashable {
    package var task: Int32
    package var index: Int32
}
