/// The four states of a DAG node, as the original names them on the wire and in `dag_nodes.status`.
enum NodeStatus: UInt8, CaseIterable {
    case pending, running, completed, failed

    var name: String {
        switch self {
        case .pending: return "PENDING"
        case .running: return "RUNNING"
        case .completed: return "COMPLETED"
        case .failed: return "FAILED"
        }
    }

    init?(name: String) {
        switch name {
        case "PENDING": self = .pending
        case "RUNNING": self = .running
        case "COMPLETED": self = .completed
        case "FAILED": self = .failed
        default: return nil
        }
    }
}

/// Whether a row must reach SQLite at the end of the loop turn, and how.
enum PersistState: UInt8 {
    case clean
    case dirty      // exists on disk; UPDATE it
    case inserted   // new this turn; INSERT it (later changes this turn ride along)
}

/// The lease a RUNNING node is held under. A class, so that a node that is not running (nearly
/// all of them, in a big DAG) pays one pointer for it instead of the whole record.
final class Lease {
    var id: UUID128
    var owner: String
    var acquiredAtSecs: Int64
    var expiresAtMs: Int64
    var deadline: DeadlineHandle
    /// The connection whose close expires this lease (release_on_disconnect), or 0.
    var boundConnection: UInt64

    init(id: UUID128, owner: String, acquiredAtSecs: Int64, expiresAtMs: Int64, deadline: DeadlineHandle,
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
struct Node {
    var id: UUID128
    var status: NodeStatus = .pending
    /// Dependencies that are not COMPLETED yet; the node is runnable at 0 while PENDING.
    var unfinishedDependencies: Int32 = 0
    /// Dependencies that are FAILED or blocked; a PENDING node with any is BLOCKED: it can never run.
    var blockedDependencies: Int32 = 0
    var dependencies = IndexList()
    var dependents = IndexList()
    var payloadSchema: [UInt8]
    /// The result (COMPLETED) or error payload (FAILED), compact JSON.
    var result: [UInt8]? = nil
    var lease: Lease? = nil
    var updatedAtSecs: Int64
    var attempts: Int32 = 0
    /// 0 means unlimited, as in the original.
    var maxAttempts: Int32 = 0
    var persist: PersistState = .inserted
    /// Positions of this node's events in the task's journal, for ReadEvents by node.
    var events: [Int32] = []

    /// PENDING but never runnable, because a dependency failed (directly or further up).
    var isBlocked: Bool { status == .pending && blockedDependencies > 0 }
}

/// One journal entry. `seq` rises by one per task, from 1.
struct JournalEvent {
    var id: UUID128
    var seq: Int64
    var node: Int32
    var actionType: String
    var payload: [UInt8]
    var timestampMs: Int64
    /// The event as an answer carries it, kept only while it is among the task's last events:
    /// every acquire of the task sends those again.
    var json: [UInt8] = []
}

/// Where a task stands as a whole (Part B's `task.status`).
enum TaskStatus: UInt8, CaseIterable {
    case active, completed, failed, cancelled

    var name: String {
        switch self {
        case .active: return "ACTIVE"
        case .completed: return "COMPLETED"
        case .failed: return "FAILED"
        case .cancelled: return "CANCELLED"
        }
    }

    init?(name: String) {
        guard let match = TaskStatus.allCases.first(where: { $0.name == name }) else { return nil }
        self = match
    }
}

/// A task: its goal and context, its DAG and its journal.
final class TaskRecord {
    let id: UUID128
    let slot: Int32
    let goal: String
    let context: [UInt8]
    let createdAtMs: Int64
    var nodes: [Node] = []
    var ready = ReadyQueue()
    var events: [JournalEvent] = []
    /// Events before this position carry no cached `json`.
    var eventJSONCachedFrom = 0
    /// Node count per NodeStatus.rawValue.
    var counts: [Int] = [0, 0, 0, 0]
    /// PENDING nodes that can never run (a subset of counts[pending]).
    var blockedCount = 0
    var cancelled = false
    /// The status it was last filed under in the per-status task index.
    var indexedStatus: TaskStatus = .active
    /// Parked AcquireNextNode and ReadEvents requests, in arrival order (waiter ids).
    var acquireWaiters = WaiterQueue()
    var eventWaiters = WaiterQueue()

    /// Derived from the counts, so it never needs a scan.
    var status: TaskStatus {
        if cancelled { return .cancelled }
        let total = nodes.count
        if total > 0 && counts[Int(NodeStatus.completed.rawValue)] == total { return .completed }
        if counts[Int(NodeStatus.failed.rawValue)] > 0 && counts[Int(NodeStatus.running.rawValue)] == 0
            && counts[Int(NodeStatus.pending.rawValue)] == blockedCount {
            return .failed
        }
        return .active
    }

    init(id: UUID128, slot: Int32, goal: String, context: [UInt8], createdAtMs: Int64) {
        self.id = id
        self.slot = slot
        self.goal = goal
        self.context = context
        self.createdAtMs = createdAtMs
    }
}

/// An exclusive lock on a resource key.
struct ResourceLock {
    var key: String
    var leaseId: UUID128
    var owner: String
    var provider: String?
    var taskId: UUID128?
    var nodeId: UUID128?
    var metadata: [UInt8]
    var acquiredAtSecs: Int64
    var expiresAtMs: Int64
    var updatedAtSecs: Int64
    var deadline: DeadlineHandle
    var boundConnection: UInt64 = 0
    var fencingToken: Int64 = 0
}

/// Where a node lives: the slot of its task and its index in that task's node array.
struct NodeRef: Hashable {
    var task: Int32
    var index: Int32
}
