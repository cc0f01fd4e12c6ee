import AgentdBase
/// The in-memory state machine of agentd: tasks and their DAGs, node leases, resource locks,
/// the journal, parked requests, deadlines and counters. It does no I/O: time comes from an
/// injected Clock, every change is recorded in `changes` for the persistence layer to write at the end of
/// the loop turn, and a parked request that ends is handed to `onWaiterResolved`.
package final class Coordinator {
    package struct Settings {
        /// Lease length of a node when the caller names none (AGENTD_NODE_TIMEOUT_SECS).
        package var nodeTimeoutSecs: Int64 = 300
        /// How many journal events an acquired node's context carries.
        package var contextEventLimit: Int = 50

        package init(nodeTimeoutSecs: Int64 = 300, contextEventLimit: Int = 50) {
            self.nodeTimeoutSecs = nodeTimeoutSecs
            self.contextEventLimit = contextEventLimit
        }
    }

    /// What a connection holds that dies with it (release_on_disconnect).
    package enum Binding: Hashable {
        case lease(NodeRef)
        case lock(LockKey)
    }

    package let settings: Settings
    package let clock: Clock
    package var ids: UUIDGenerator

    // Tasks by id and by slot; a slot is never reused, so NodeRefs stay valid.
    package var tasksById: [UUID128: TaskRecord] = [:]
    package var taskSlots: [TaskRecord?] = []
    /// Node ids are unique across all tasks (the primary key of dag_nodes).
    package var nodeRefs: [UUID128: NodeRef] = [:]
    /// Task slots, ascending (oldest first): all of them, and per TaskStatus.rawValue.
    package var taskIndex = TaskIndex()

    /// The held locks, in slots so that deadlines can name them by number.
    package var locks = LockTable()
    /// Parked AcquireResourceLock requests per key, and how many of them are still waiting.
    /// Keyed by text: only a parked request or a freed key with waiters looks here.
    package var lockWaiters: [String: WaiterQueue] = [:]
    package var lockWaiterCounts: [String: Int] = [:]
    /// The last fencing token handed out.
    package var fencingCounter: Int64 = 0
    /// Tokens up to this one may have been handed out: it is what is persisted, a block ahead,
    /// so that tokens rise across restarts without a row written on every grant.
    package var fencingReserved: Int64 = 0
    /// Each move of the reservation is synced before its first token leaves, in every --sync mode
    /// (an fsync on the loop thread): at 100k grants a second, a block of 65,536 makes that under
    /// two a second. A restart skips what is left of the block; tokens only need to rise.
    package static let fencingReservationBlock: Int64 = 65536

    package var waiters: [UInt64: Waiter] = [:]
    package var nextWaiterId: UInt64 = 1
    package var waitersByConnection: [UInt64: [UInt64]] = [:]
    package var bindingsByConnection: [UInt64: [Binding: UUID128]] = [:]
    /// Tasks that gained runnable nodes while acquirers wait on them.
    package var tasksToServe: [Int32] = []
    /// Called when a parked request ends, with the state it ended in.
    package var onWaiterResolved: ((Waiter, WaiterOutcome) -> Void)?

    package var deadlines = DeadlineQueue()
    package var counters = RuntimeCounters()
    package var totals = StateTotals()
    package var changes = ChangeSet()

    package init(settings: Settings, clock: Clock, ids: UUIDGenerator = UUIDGenerator()) {
        self.settings = settings
        self.clock = clock
        self.ids = ids
    }

    package var nowMs: Int64 { clock.wallMs }

    /// The earliest instant at which something expires, for the one timer the server arms.
    package var nextDeadlineMs: Int64? { deadlines.earliest }

    /// The longest duration a deadline may lie ahead: ten years. The protocol refuses longer
    /// ones; the Coordinator clamps too, so that no caller can overflow a deadline.
    package static let maxDurationMs: Int64 = 10 * 365 * 86_400 * 1000

    /// `now` plus a duration, clamped to the longest one.
    package func instant(afterMs duration: Int64, from now: Int64) -> Int64 {
        now + min(max(duration, 0), Coordinator.maxDurationMs)
    }

    package func instant(afterSecs duration: Int64, from now: Int64) -> Int64 {
        instant(afterMs: duration > Coordinator.maxDurationMs / 1000 ? Coordinator.maxDurationMs : duration * 1000, from: now)
    }

    /// A lease or lock deadline: the first whole second at or after `now` plus the TTL. Answers
    /// report deadlines in whole seconds and a client (of the original too) treats the lock or
    /// lease as free from the reported second on, so that second must be the real deadline; and
    /// rounding up, not down, means a holder never gets less than the TTL it asked for.
    package func leaseDeadline(afterSecs ttl: Int64, from now: Int64) -> Int64 {
        Coordinator.wholeSecond(atOrAfter: instant(afterSecs: ttl, from: now))
    }

    /// The first whole second (in ms) at or after `ms`.
    package static func wholeSecond(atOrAfter ms: Int64) -> Int64 {
        let remainder = ms % 1000
        return remainder == 0 ? ms : ms - remainder + (remainder > 0 ? 1000 : 0)
    }

    // MARK: - Lookups

    package func task(_ id: UUID128) throws -> TaskRecord {
        guard let task = tasksById[id] else { throw CoordinatorError.taskNotFound(id) }
        return task
    }

    package func task(slot: Int32) -> TaskRecord? { taskSlots[Int(slot)] }

    /// The node `nodeId` of task `taskId`, with the original's messages when either is unknown.
    package func nodeRef(task taskId: UUID128, node nodeId: UUID128) throws -> (TaskRecord, Int32) {
        let task = try self.task(taskId)
        guard let ref = nodeRefs[nodeId], ref.task == task.slot else {
            throw CoordinatorError.nodeNotFound(nodeId, task: taskId)
        }
        return (task, ref.index)
    }

    package var lockCount: Int { locks.count }

    package func lock(slot: Int32) -> ResourceLock? { locks[slot: slot] }

    /// For callers holding only the text (tests, tools): hashes it.
    package func lock(key: String) -> ResourceLock? { locks.lock(key: LockKey(key)) }

    package func lock(key: LockKey) -> ResourceLock? { locks.lock(key: key) }

    /// Active locks sorted by key, only those starting with `prefix` when given.
    package func locksSortedByKey(prefix: String = "") -> [ResourceLock] {
        locks.sortedLocks(withPrefix: prefix)
    }

    package func waiterCount(forLock key: String) -> Int {
        lockWaiterCounts.isEmpty ? 0 : lockWaiterCounts[key] ?? 0
    }

    // MARK: - Bookkeeping shared by the operations

    package func addTask(_ task: TaskRecord) {
        tasksById[task.id] = task
        if Int(task.slot) == taskSlots.count { taskSlots.append(task) } else { taskSlots[Int(task.slot)] = task }
        totals.tasks += 1
        task.indexedStatus = task.status
        taskIndex.insert(task.slot, status: task.indexedStatus)
    }

    package var nextTaskSlot: Int32 { Int32(taskSlots.count) }

    /// Appends a node to a task; the caller has validated it and set its dependency counts.
    package func appendNode(_ node: Node, to task: TaskRecord) {
        let index = Int32(task.nodes.count)
        nodeRefs[node.id] = NodeRef(task: task.slot, index: index)
        task.nodes.append(node)
        if let name = node.name { task.nodesByName[name] = index }
        task.counts[Int(node.status.rawValue)] += 1
        if node.isBlocked { task.blockedCount += 1 }
        totals.nodes += 1
        totals.nodeCounts[Int(node.status.rawValue)] += 1
    }

    /// A node whose failure (or blocking) makes its PENDING dependents blocked.
    package func contributesBlock(_ node: Node) -> Bool {
        node.status == .failed || node.isBlocked
    }

    /// Moves a node to another status, keeping every count, the blocked marks downstream and
    /// the task's place in the status index right.
    package func setStatus(_ status: NodeStatus, of index: Int32, in task: TaskRecord) {
        let old = task.nodes[Int(index)]
        willChangeNode(index, in: task)
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
    package func propagateBlock(from start: Int32, delta: Int32, in task: TaskRecord) {
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
    package func startBlocked(_ index: Int32, by count: Int32, in task: TaskRecord) {
        if adjustBlockedDependencies(of: index, by: count, in: task) {
            propagateBlock(from: index, delta: 1, in: task)
        }
    }

    /// Keeps the per-status task index in step with the task's derived status.
    package func refile(_ task: TaskRecord) {
        let status = task.status
        guard status != task.indexedStatus else { return }
        // Acquirers parked on a task that stops being ACTIVE are answered null (by serveWaiting,
        // once the request that changed the task is done with it).
        if status != .active && !task.acquireWaiters.isEmpty { tasksToServe.append(task.slot) }
        taskIndex.move(task.slot, from: task.indexedStatus, to: status)
        task.indexedStatus = status
    }

    package func markDirty(_ index: Int32, in task: TaskRecord) {
        if task.nodes[Int(index)].persist == .clean {
            task.nodes[Int(index)].persist = .dirty
            changes.dirtyNodes.append(NodeRef(task: task.slot, index: index))
        }
    }

    /// PENDING with every dependency COMPLETED: into the ready queue, and wake a parked acquirer.
    package func makeReady(_ index: Int32, in task: TaskRecord) {
        task.ready.insert(index)
        if !task.acquireWaiters.isEmpty { tasksToServe.append(task.slot) }
    }

    @discardableResult
    package func appendEvent(to task: TaskRecord, node: Int32, actionType: String, payload: [UInt8]) -> UUID128 {
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
    /// At a key's first change in a turn its row is on disk exactly when the key is held (every
    /// earlier change was committed), so the caller says which: `held` is false only for a grant.
    /// (No default: a wrong `held` leaves a released lock's row on disk, back after a restart.)
    /// One hash of the key: the default subscript inserts `held` only when the key is new.
    package func touchLock(_ key: LockKey, held: Bool) {
        assert(changes.dirtyLocks[key] != nil || held == locks.contains(key: key), "touchLock(\(key), held: \(held))")
        keepFirst(&changes.dirtyLocks[key, default: held])
    }

    package func insertLock(_ lock: ResourceLock) -> Int32 {
        let slot = locks.insert(lock)
        if lock.boundConnection != 0 {
            bindingsByConnection[lock.boundConnection, default: [:]][.lock(lock.lockKey)] = lock.leaseId
        }
        return slot
    }

    package func updateLock(slot: Int32, _ body: (inout ResourceLock) -> Void) {
        locks.update(slot: slot, body)
    }

    /// Drops a lock from memory (the caller has touched its key) and hands the key to the next
    /// parked acquirer, if any.
    package func removeLock(slot: Int32) {
        guard let lock = locks.remove(slot: slot) else { return }
        if !lock.deadline.isNone { deadlines.cancel(lock.deadline) }
        if lock.boundConnection != 0 {
            bindingsByConnection[lock.boundConnection]?[.lock(lock.lockKey)] = nil
        }
        grantToNextLockWaiter(lock.lockKey)
    }

    // MARK: - Expiry

    /// Expires every lease, lock and parked request whose instant has come. Called by the
    /// timer, and before each request so that no request ever sees a lease that should be gone.
    package func expireDue() {
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
                guard let lock = locks[slot: slot] else { continue }
                touchLock(lock.lockKey, held: true)
                // The deadline already left the queue; do not cancel it twice.
                locks.update(slot: slot) { $0.deadline = .none }
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

    /// Takes the node's lease away, with its deadline and its tie to a connection; returns it.
    @discardableResult
    package func endLease(_ index: Int32, in task: TaskRecord) -> Lease? {
        guard let lease = task.nodes[Int(index)].lease else { return nil }
        willChangeNode(index, in: task)
        if !lease.deadline.isNone { deadlines.cancel(lease.deadline) }
        if lease.boundConnection != 0 {
            bindingsByConnection[lease.boundConnection]?[.lease(NodeRef(task: task.slot, index: index))] = nil
        }
        task.nodes[Int(index)].lease = nil
        return lease
    }

    /// A lease ends without its holder finishing: journaled, and the node goes back to PENDING,
    /// or to FAILED when that was its last attempt.
    package func expireLease(_ index: Int32, in task: TaskRecord, reason: StaticString) {
        guard let lease = endLease(index, in: task) else { return }
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
    package func returnToPending(_ index: Int32, in task: TaskRecord) {
        setStatus(.pending, of: index, in: task)
        task.nodes[Int(index)].updatedAtSecs = nowMs / 1000
        markDirty(index, in: task)
        if task.nodes[Int(index)].unfinishedDependencies == 0 {
            makeReady(index, in: task)
        }
    }
}

/// Leaves the value as it is: passed the default subscript of a dictionary, it inserts the
/// default for a new key and keeps an existing one, with one lookup.
@inline(__always)
private func keepFirst(_ value: inout Bool) {}
