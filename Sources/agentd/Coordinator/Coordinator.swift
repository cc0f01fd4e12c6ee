/// The in-memory state machine of agentd: tasks and their DAGs, node leases, resource locks,
/// the journal, deadlines and counters. It does no I/O: time comes from an injected Clock and
/// every change is recorded in `changes` for the Store to write at the end of the loop turn.
final class Coordinator {
    struct Settings {
        /// Lease length of a node when the caller names none (AGENTD_NODE_TIMEOUT_SECS).
        var nodeTimeoutSecs: Int64 = 300
        /// How many journal events an acquired node's context carries.
        var contextEventLimit: Int = 50
    }

    let settings: Settings
    let clock: Clock
    var ids: UUIDGenerator

    // Tasks by id and by slot; a slot is never reused, so NodeRefs stay valid.
    private(set) var tasksById: [UUID128: TaskRecord] = [:]
    private(set) var taskSlots: [TaskRecord?] = []
    /// Node ids are unique across all tasks (the primary key of dag_nodes).
    private(set) var nodeRefs: [UUID128: NodeRef] = [:]

    // Locks live in slots so that deadlines can name them by number.
    private(set) var lockSlotsByKey: [String: Int32] = [:]
    private(set) var lockSlots: [ResourceLock?] = []
    private var freeLockSlots: [Int32] = []

    var deadlines = DeadlineQueue()
    var counters = RuntimeCounters()
    var totals = StateTotals()
    var changes = ChangeSet()

    init(settings: Settings, clock: Clock, ids: UUIDGenerator = UUIDGenerator()) {
        self.settings = settings
        self.clock = clock
        self.ids = ids
    }

    var nowMs: Int64 { clock.wallMs }

    /// The earliest instant at which something expires, for the one timer the server arms.
    var nextDeadlineMs: Int64? { deadlines.earliest }

    // MARK: - Lookups

    func task(_ id: UUID128) throws -> TaskRecord {
        guard let task = tasksById[id] else { throw CoordinatorError.taskNotFound(id) }
        return task
    }

    func task(slot: Int32) -> TaskRecord? { taskSlots[Int(slot)] }

    /// The node `nodeId` of task `taskId`, with the original's messages when either is unknown.
    func nodeRef(task taskId: UUID128, node nodeId: UUID128) throws -> (TaskRecord, Int32) {
        let task = try self.task(taskId)
        guard let ref = nodeRefs[nodeId], ref.task == task.slot else {
            throw CoordinatorError.nodeNotFound(nodeId, task: taskId)
        }
        return (task, ref.index)
    }

    var lockCount: Int { lockSlotsByKey.count }

    func lock(slot: Int32) -> ResourceLock? { lockSlots[Int(slot)] }

    func lock(key: String) -> ResourceLock? {
        lockSlotsByKey[key].flatMap { lockSlots[Int($0)] }
    }

    /// Active locks sorted by key.
    func locksSortedByKey() -> [ResourceLock] {
        lockSlotsByKey.keys.sorted().compactMap { lock(key: $0) }
    }

    // MARK: - Bookkeeping shared by the operations

    func addTask(_ task: TaskRecord) {
        tasksById[task.id] = task
        if Int(task.slot) == taskSlots.count { taskSlots.append(task) } else { taskSlots[Int(task.slot)] = task }
        totals.tasks += 1
    }

    var nextTaskSlot: Int32 { Int32(taskSlots.count) }

    /// Appends a node to a task; the caller has validated it and set its dependency counts.
    func appendNode(_ node: Node, to task: TaskRecord) {
        let index = Int32(task.nodes.count)
        nodeRefs[node.id] = NodeRef(task: task.slot, index: index)
        task.nodes.append(node)
        task.counts[Int(node.status.rawValue)] += 1
        totals.nodes += 1
        totals.nodeCounts[Int(node.status.rawValue)] += 1
    }

    /// Moves a node to another status, keeping every count and the change record right.
    func setStatus(_ status: NodeStatus, of index: Int32, in task: TaskRecord) {
        let old = task.nodes[Int(index)].status
        guard old != status else { return }
        task.nodes[Int(index)].status = status
        task.counts[Int(old.rawValue)] -= 1
        task.counts[Int(status.rawValue)] += 1
        totals.nodeCounts[Int(old.rawValue)] -= 1
        totals.nodeCounts[Int(status.rawValue)] += 1
    }

    func markDirty(_ index: Int32, in task: TaskRecord) {
        if task.nodes[Int(index)].persist == .clean {
            task.nodes[Int(index)].persist = .dirty
            changes.dirtyNodes.append(NodeRef(task: task.slot, index: index))
        }
    }

    func appendEvent(to task: TaskRecord, node: Int32, actionType: String, payload: [UInt8]) -> UUID128 {
        let event = JournalEvent(id: ids.next(), seq: Int64(task.events.count) + 1, node: node,
                                 actionType: actionType, payload: payload, timestampMs: nowMs)
        task.events.append(event)
        changes.newEvents.append((task.slot, Int32(task.events.count - 1)))
        totals.events += 1
        return event.id
    }

    // Lock table

    /// Records that a lock key is about to change, remembering whether its row is on disk now.
    func touchLock(_ key: String) {
        if changes.dirtyLocks[key] == nil {
            changes.dirtyLocks[key] = lockSlotsByKey[key] != nil
        }
    }

    func insertLock(_ lock: ResourceLock) -> Int32 {
        let slot: Int32
        if let reused = freeLockSlots.popLast() {
            slot = reused
            lockSlots[Int(slot)] = lock
        } else {
            slot = Int32(lockSlots.count)
            lockSlots.append(lock)
        }
        lockSlotsByKey[lock.key] = slot
        return slot
    }

    func updateLock(slot: Int32, _ body: (inout ResourceLock) -> Void) {
        body(&lockSlots[Int(slot)]!)
    }

    func removeLock(slot: Int32) {
        guard let lock = lockSlots[Int(slot)] else { return }
        deadlines.cancel(lock.deadline)
        lockSlots[Int(slot)] = nil
        lockSlotsByKey[lock.key] = nil
        freeLockSlots.append(slot)
    }

    // MARK: - Expiry

    /// Expires every lease and lock whose instant has come. Called by the timer, and before
    /// each request so that no request ever sees a lease that should be gone.
    func expireDue() {
        let now = nowMs
        while let owner = deadlines.popDue(nowMs: now) {
            switch owner {
            case let .nodeLease(taskSlot, index):
                expireLease(taskSlot: taskSlot, index: index)
            case let .lock(slot):
                expireLock(slot: slot)
            case .waiter:
                break
            }
        }
    }

    private func expireLease(taskSlot: Int32, index: Int32) {
        guard let task = taskSlots[Int(taskSlot)], task.nodes[Int(index)].status == .running else { return }
        task.nodes[Int(index)].lease = nil
        returnToPending(index, in: task)
        counters.timeoutRollbacks += 1
    }

    private func expireLock(slot: Int32) {
        guard let lock = lockSlots[Int(slot)] else { return }
        touchLock(lock.key)
        // The deadline already left the queue; do not cancel it twice.
        lockSlots[Int(slot)]!.deadline = .none
        removeLock(slot: slot)
    }

    /// RUNNING -> PENDING: back in the ready queue (its dependencies are complete).
    func returnToPending(_ index: Int32, in task: TaskRecord) {
        setStatus(.pending, of: index, in: task)
        task.nodes[Int(index)].updatedAtSecs = nowMs / 1000
        markDirty(index, in: task)
        if task.nodes[Int(index)].unfinishedDependencies == 0 {
            task.ready.insert(index)
        }
    }
}
