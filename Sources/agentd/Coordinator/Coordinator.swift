/// The in-memory state machine of agentd: tasks and their DAGs, node leases, resource locks,
/// the journal, parked requests, deadlines and counters. It does no I/O: time comes from an
/// injected Clock, every change is recorded in `changes` for the Store to write at the end of
/// the loop turn, and a parked request that ends is handed to `onWaiterResolved`.
final class Coordinator {
    struct Settings {
        /// Lease length of a node when the caller names none (AGENTD_NODE_TIMEOUT_SECS).
        var nodeTimeoutSecs: Int64 = 300
        /// How many journal events an acquired node's context carries.
        var contextEventLimit: Int = 50
    }

    /// What a connection holds that dies with it (release_on_disconnect).
    enum Binding: Hashable {
        case lease(NodeRef)
        case lock(String)
    }

    let settings: Settings
    let clock: Clock
    var ids: UUIDGenerator

    // Tasks by id and by slot; a slot is never reused, so NodeRefs stay valid.
    var tasksById: [UUID128: TaskRecord] = [:]
    var taskSlots: [TaskRecord?] = []
    /// Node ids are unique across all tasks (the primary key of dag_nodes).
    var nodeRefs: [UUID128: NodeRef] = [:]
    /// Task slots, ascending (oldest first): all of them, and per TaskStatus.rawValue.
    var taskIndex = TaskIndex()

    // Locks live in slots so that deadlines can name them by number.
    var lockSlotsByKey: [String: Int32] = [:]
    var lockSlots: [ResourceLock?] = []
    var freeLockSlots: [Int32] = []
    /// Every held key, sorted, for ListResourceLocks and its prefix.
    var sortedLockKeys = SortedKeys()
    /// Keys of the locks that name a task, so DeleteTask finds them without a scan.
    var lockKeysByTask: [UUID128: Set<String>] = [:]
    /// Parked AcquireResourceLock requests per key, and how many of them are still waiting.
    var lockWaiters: [String: WaiterQueue] = [:]
    var lockWaiterCounts: [String: Int] = [:]
    /// The last fencing token handed out.
    var fencingCounter: Int64 = 0
    /// Tokens up to this one may have been handed out: it is what is persisted, a block ahead,
    /// so that tokens rise across restarts without a row written on every grant.
    var fencingReserved: Int64 = 0
    /// Each move of the reservation is synced before its first token leaves, in every --sync mode
    /// (an fsync on the loop thread): at 100k grants a second, a block of 65,536 makes that under
    /// two a second. A restart skips what is left of the block; tokens only need to rise.
    static let fencingReservationBlock: Int64 = 65536

    var waiters: [UInt64: Waiter] = [:]
    var nextWaiterId: UInt64 = 1
    var waitersByConnection: [UInt64: [UInt64]] = [:]
    var bindingsByConnection: [UInt64: [Binding: UUID128]] = [:]
    /// Tasks that gained runnable nodes while acquirers wait on them.
    var tasksToServe: [Int32] = []
    /// Called when a parked request ends, with the state it ended in.
    var onWaiterResolved: ((Waiter, WaiterOutcome) -> Void)?

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

    /// The longest duration a deadline may lie ahead: ten years. The protocol refuses longer
    /// ones; the Coordinator clamps too, so that no caller can overflow a deadline.
    static let maxDurationMs: Int64 = 10 * 365 * 86_400 * 1000

    /// `now` plus a duration, clamped to the longest one.
    func instant(afterMs duration: Int64, from now: Int64) -> Int64 {
        now + min(max(duration, 0), Coordinator.maxDurationMs)
    }

    func instant(afterSecs duration: Int64, from now: Int64) -> Int64 {
        instant(afterMs: duration > Coordinator.maxDurationMs / 1000 ? Coordinator.maxDurationMs : duration * 1000, from: now)
    }

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

    /// Active locks sorted by key, only those starting with `prefix` when given.
    func locksSortedByKey(prefix: String = "") -> [ResourceLock] {
        sortedLockKeys.keys(withPrefix: prefix).compactMap { lock(key: $0) }
    }

    func waiterCount(forLock key: String) -> Int {
        lockWaiterCounts.isEmpty ? 0 : lockWaiterCounts[key] ?? 0
    }

    // MARK: - Bookkeeping shared by the operations

    func addTask(_ task: TaskRecord) {
        tasksById[task.id] = task
        if Int(task.slot) == taskSlots.count { taskSlots.append(task) } else { taskSlots[Int(task.slot)] = task }
        totals.tasks += 1
        task.indexedStatus = task.status
        taskIndex.insert(task.slot, status: task.indexedStatus)
    }

    var nextTaskSlot: Int32 { Int32(taskSlots.count) }

    /// Appends a node to a task; the caller has validated it and set its dependency counts.
    func appendNode(_ node: Node, to task: TaskRecord) {
        let index = Int32(task.nodes.count)
        nodeRefs[node.id] = NodeRef(task: task.slot, index: index)
        task.nodes.append(node)
        task.counts[Int(node.status.rawValue)] += 1
        if node.isBlocked { task.blockedCount += 1 }
        totals.nodes += 1
        totals.nodeCounts[Int(node.status.rawValue)] += 1
    }

    /// A node whose failure (or blocking) makes its PENDING dependents blocked.
    func contributesBlock(_ node: Node) -> Bool {
        node.status == .failed || node.isBlocked
    }

    /// Moves a node to another status, keeping every count, the blocked marks downstream and
    /// the task's place in the status index right.
    func setStatus(_ status: NodeStatus, of index: Int32, in task: TaskRecord) {
        let old = task.nodes[Int(index)]
        guard old.status != status else { return }
        task.nodes[Int(index)].status = status
        task.counts[Int(old.status.rawValue)] -= 1
        task.counts[Int(status.rawValue)] += 1
        totals.nodeCounts[Int(old.status.rawValue)] -= 1
        totals.nodeCounts[Int(status.rawValue)] += 1
        let new = task.nodes[Int(index)]
        if old.isBlocked != new.isBlocked { task.blockedCount += new.isBlocked ? 1 : -1 }
        if contributesBlock(old) != contributesBlock(new) {
            propagateBlock(from: index, delta: contributesBlock(new) ? 1 : -1, in: task)
        }
        refile(task)
    }

    /// Walks down from a node whose blocking contribution changed, without recursion: a chain
    /// of a million nodes must not overflow the stack.
    func propagateBlock(from start: Int32, delta: Int32, in task: TaskRecord) {
        var stack: [Int32] = [start]
        while let current = stack.popLast() {
            for dependent in task.nodes[Int(current)].dependents {
                if adjustBlockedDependencies(of: dependent, by: delta, in: task) { stack.append(dependent) }
            }
        }
    }

    /// Changes one node's count of failed-or-blocked dependencies; true when that changed
    /// whether the node itself blocks its dependents.
    private func adjustBlockedDependencies(of index: Int32, by delta: Int32, in task: TaskRecord) -> Bool {
        let before = task.nodes[Int(index)]
        task.nodes[Int(index)].blockedDependencies += delta
        let after = task.nodes[Int(index)]
        if before.isBlocked != after.isBlocked { task.blockedCount += after.isBlocked ? 1 : -1 }
        return contributesBlock(before) != contributesBlock(after)
    }

    /// A new node starts out blocked by `count` dependencies that had failed or were blocked.
    func startBlocked(_ index: Int32, by count: Int32, in task: TaskRecord) {
        if adjustBlockedDependencies(of: index, by: count, in: task) {
            propagateBlock(from: index, delta: 1, in: task)
        }
    }

    /// Keeps the per-status task index in step with the task's derived status.
    func refile(_ task: TaskRecord) {
        let status = task.status
        guard status != task.indexedStatus else { return }
        taskIndex.move(task.slot, from: task.indexedStatus, to: status)
        task.indexedStatus = status
    }

    func markDirty(_ index: Int32, in task: TaskRecord) {
        if task.nodes[Int(index)].persist == .clean {
            task.nodes[Int(index)].persist = .dirty
            changes.dirtyNodes.append(NodeRef(task: task.slot, index: index))
        }
    }

    /// PENDING with every dependency COMPLETED: into the ready queue, and wake a parked acquirer.
    func makeReady(_ index: Int32, in task: TaskRecord) {
        task.ready.insert(index)
        if !task.acquireWaiters.isEmpty { tasksToServe.append(task.slot) }
    }

    @discardableResult
    func appendEvent(to task: TaskRecord, node: Int32, actionType: String, payload: [UInt8]) -> UUID128 {
        let event = JournalEvent(id: ids.nextOrdered(unixMs: nowMs), seq: Int64(task.events.count) + 1, node: node,
                                 actionType: actionType, payload: payload, timestampMs: nowMs)
        task.events.append(event)
        task.nodes[Int(node)].events.append(Int32(task.events.count - 1))
        changes.newEvents.append((task.slot, Int32(task.events.count - 1)))
        totals.events += 1
        if !task.eventWaiters.isEmpty { wakeEventWaiters(of: task, for: event) }
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
        sortedLockKeys.insert(lock.key)
        if let taskId = lock.taskId { lockKeysByTask[taskId, default: []].insert(lock.key) }
        if lock.boundConnection != 0 {
            bindingsByConnection[lock.boundConnection, default: [:]][.lock(lock.key)] = lock.leaseId
        }
        return slot
    }

    func updateLock(slot: Int32, _ body: (inout ResourceLock) -> Void) {
        body(&lockSlots[Int(slot)]!)
    }

    /// Drops a lock from memory (the caller has touched its key) and hands the key to the next
    /// parked acquirer, if any.
    func removeLock(slot: Int32) {
        guard let lock = lockSlots[Int(slot)] else { return }
        if !lock.deadline.isNone { deadlines.cancel(lock.deadline) }
        lockSlots[Int(slot)] = nil
        lockSlotsByKey[lock.key] = nil
        sortedLockKeys.remove(lock.key)
        freeLockSlots.append(slot)
        if let taskId = lock.taskId {
            lockKeysByTask[taskId]?.remove(lock.key)
            if lockKeysByTask[taskId]?.isEmpty == true { lockKeysByTask[taskId] = nil }
        }
        if lock.boundConnection != 0 {
            bindingsByConnection[lock.boundConnection]?[.lock(lock.key)] = nil
        }
        grantToNextLockWaiter(lock.key)
    }

    // MARK: - Expiry

    /// Expires every lease, lock and parked request whose instant has come. Called by the
    /// timer, and before each request so that no request ever sees a lease that should be gone.
    func expireDue() {
        let now = nowMs
        while let owner = deadlines.popDue(nowMs: now) {
            switch owner {
            case let .nodeLease(taskSlot, index):
                guard let task = taskSlots[Int(taskSlot)], var lease = task.nodes[Int(index)].lease else { continue }
                lease.deadline = .none
                task.nodes[Int(index)].lease = lease
                expireLease(index, in: task, reason: "timeout")
                // Serve now: a parked acquirer whose own deadline comes later in this same
                // (late) pass must get the node, not a timeout.
                serveWaiting()
            case let .lock(slot):
                guard let lock = lockSlots[Int(slot)] else { continue }
                touchLock(lock.key)
                // The deadline already left the queue; do not cancel it twice.
                lockSlots[Int(slot)]!.deadline = .none
                removeLock(slot: slot)
            case let .waiter(id):
                guard var waiter = waiters[id] else { continue }
                waiter.deadline = .none
                waiters[id] = waiter
                resolveWaiter(id)
            }
        }
        serveWaiting()
    }

    /// A lease ends without its holder finishing: journaled, and the node goes back to PENDING,
    /// or to FAILED when that was its last attempt.
    func expireLease(_ index: Int32, in task: TaskRecord, reason: StaticString) {
        guard let lease = task.nodes[Int(index)].lease else { return }
        if !lease.deadline.isNone { deadlines.cancel(lease.deadline) }
        if lease.boundConnection != 0 {
            bindingsByConnection[lease.boundConnection]?[.lease(NodeRef(task: task.slot, index: index))] = nil
        }
        task.nodes[Int(index)].lease = nil
        let node = task.nodes[Int(index)]
        var payload: [UInt8] = []
        payload.appendASCII("{\"lease_id\":")
        payload.appendQuotedUUID(lease.id)
        payload.appendASCII(",\"lease_owner\":")
        payload.appendJSONString(lease.owner)
        payload.appendASCII(",\"attempt\":")
        payload.appendJSONInt(Int64(node.attempts))
        payload.appendASCII(",\"reason\":\"")
        payload.appendASCII(reason)
        payload.appendASCII("\"}")
        appendEvent(to: task, node: index, actionType: "LEASE_EXPIRED", payload: payload)
        counters.timeoutRollbacks += 1
        if node.maxAttempts > 0 && node.attempts >= node.maxAttempts {
            var error: [UInt8] = []
            error.appendASCII("{\"error\":\"attempts exhausted\",\"attempts\":")
            error.appendJSONInt(Int64(node.attempts))
            error.append(UInt8(ascii: "}"))
            task.nodes[Int(index)].result = error
            task.nodes[Int(index)].updatedAtSecs = nowMs / 1000
            setStatus(.failed, of: index, in: task)
            markDirty(index, in: task)
            counters.failedNodes += 1
        } else {
            returnToPending(index, in: task)
        }
    }

    /// RUNNING (or FAILED, on retry) -> PENDING: back in the ready queue when its dependencies
    /// are complete.
    func returnToPending(_ index: Int32, in task: TaskRecord) {
        setStatus(.pending, of: index, in: task)
        task.nodes[Int(index)].updatedAtSecs = nowMs / 1000
        markDirty(index, in: task)
        if task.nodes[Int(index)].unfinishedDependencies == 0 {
            makeReady(index, in: task)
        }
    }
}
