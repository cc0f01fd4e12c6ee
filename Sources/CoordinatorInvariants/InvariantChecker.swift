import AgentdBase
import AgentdCore

/// A broken Coordinator invariant, described.
package struct InvariantViolation: Error, CustomStringConvertible {
    package let description: String

    package init(_ description: String) { self.description = description }
}

/// The Coordinator's invariants, checked from scratch against everything it keeps incrementally.
/// The unit tests (a seeded random walk) and the fuzz targets run the same checks after each step.
///
/// - Tasks: each is found by its id and at its slot; its filed status is its status; the status
///   index lists exactly the live tasks, newest first, per status and in all.
/// - Nodes: each is found by its id at its place; per-task and global counts match the nodes;
///   unfinished-dependency counts, blocked-dependency counts, blocked marks and dependents match
///   a fresh walk of the dependency lists (which form no cycle); a cancelled task has no PENDING node.
/// - Leases: a RUNNING node has exactly one lease, in the deadline queue at its expiry, and every
///   dependency COMPLETED; no lease id holds two nodes; a node that is not RUNNING has none.
/// - Ready queue: exactly the runnable nodes (PENDING, every dependency COMPLETED), once each,
///   in index order; no acquirer waits on a task while one is ready.
/// - Journal: seqs run 1...n, and each node lists exactly its own events.
/// - Locks: a key has at most one holder, in the deadline queue at its expiry; the sorted keys are
///   the held keys; fencing tokens are unique, within 1...counter, and the counter never goes back.
/// - Waiters: each has a deadline and is listed under its connection and in its task's or key's
///   queue; nobody waits for a free key or on a gone or cancelled task; the per-key waiter counts
///   match the live waiters.
/// - Bindings (release_on_disconnect) name a live lease or lock of that connection, and a bound
///   lease or lock is known to its connection.
/// - Deadlines: the queue holds one per lease, lock and waiter; none is overdue, as `Expiry` says.
package struct InvariantChecker {
    /// What the caller knows of expiry at the clock's current reading.
    package enum Expiry {
        /// The clock moved and expireDue has not run since: anything may be due.
        case notRun
        /// expireDue ran at this instant (every operation runs it first), so nothing ends before
        /// now; what an operation made since may end right now (a lease_ttl_secs of 0).
        case ranNow
        /// Nothing is due at all: expireDue ran last, or nothing made since ends at once.
        case nothingDue
    }

    /// The fencing counter at the previous check: tokens only rise.
    private var lastFencingCounter: Int64 = 0

    package init() {}

    /// Throws an `InvariantViolation` naming the first invariant found broken.
    package mutating func check(_ c: Coordinator, expiry: Expiry = .ranNow) throws {
        let now = c.nowMs
        // Whatever ends before this instant should have been expired.
        let overdueBefore: Int64?
        switch expiry {
        case .notRun: overdueBefore = nil
        case .ranNow: overdueBefore = now
        case .nothingDue: overdueBefore = now + 1
        }
        var deadlinesExpected = 0
        var leaseIds = Set<UUID128>()
        var nodeCounts = [0, 0, 0, 0]
        var nodes = 0, events = 0, liveSlots: [Int32] = []
        for (slot, entry) in c.taskSlots.enumerated() {
            guard let task = entry else { continue }
            liveSlots.append(Int32(slot))
            guard task.slot == Int32(slot), c.tasksById[task.id] === task else {
                throw InvariantViolation("task in slot \(slot) is not the one found by its id")
            }
            guard task.indexedStatus == task.status else {
                throw InvariantViolation("task \(task.id) filed as \(task.indexedStatus.name) but is \(task.status.name)")
            }
            deadlinesExpected += try Self.checkNodes(of: task, in: c, leaseIds: &leaseIds, overdueBefore: overdueBefore)
            for node in task.nodes { nodeCounts[Int(node.status.rawValue)] += 1 }
            nodes += task.nodes.count
            events += task.events.count
            try Self.checkReady(task, in: c)
            try Self.checkJournal(task)
        }
        guard c.tasksById.count == liveSlots.count else {
            throw InvariantViolation("\(c.tasksById.count) task ids for \(liveSlots.count) tasks")
        }
        guard c.nodeRefs.count == nodes else { throw InvariantViolation("\(c.nodeRefs.count) node refs for \(nodes) nodes") }
        guard c.totals.tasks == liveSlots.count, c.totals.nodes == nodes, c.totals.events == events,
              c.totals.nodeCounts == nodeCounts else {
            throw InvariantViolation("totals \(c.totals) but the tasks hold \(liveSlots.count) tasks, \(nodes) nodes \(nodeCounts), \(events) events")
        }
        try Self.checkTaskIndex(c, liveSlots: liveSlots)
        deadlinesExpected += try checkLocks(c, overdueBefore: overdueBefore)
        deadlinesExpected += try Self.checkWaiters(c)
        try Self.checkBindings(c)
        guard c.deadlines.count == deadlinesExpected else {
            throw InvariantViolation("\(c.deadlines.count) deadlines queued for \(deadlinesExpected) leases, locks and waiters")
        }
        if let overdueBefore, let earliest = c.nextDeadlineMs, earliest < overdueBefore {
            throw InvariantViolation("a deadline at \(earliest) is still queued at \(now), after expiry")
        }
    }

    /// The status index, as ListTasks pages it: newest first, all tasks and per status.
    private static func checkTaskIndex(_ c: Coordinator, liveSlots: [Int32]) throws {
        let statuses: [TaskStatus?] = [nil] + TaskStatus.allCases.map { $0 }
        for status in statuses {
            let listed = c.taskIndex.page(status: status, before: nil, limit: Int.max)
            let expected = liveSlots.reversed().filter { status == nil || c.taskSlots[Int($0)]!.status == status }
            guard listed == expected else {
                throw InvariantViolation("ListTasks \(status?.name ?? "(all)") lists slots \(listed), the tasks say \(expected)")
            }
        }
    }

    /// Returns how many lease deadlines the task's nodes hold.
    private static func checkNodes(of task: TaskRecord, in c: Coordinator, leaseIds: inout Set<UUID128>,
                                   overdueBefore: Int64?) throws -> Int {
        var counts = [0, 0, 0, 0]
        var leases = 0
        var dependents = [[Int32]](repeating: [], count: task.nodes.count)
        for (index, node) in task.nodes.enumerated() {
            guard let ref = c.nodeRefs[node.id], ref.task == task.slot, ref.index == Int32(index) else {
                throw InvariantViolation("node \(node.id) is not found at its place")
            }
            counts[Int(node.status.rawValue)] += 1
            var unfinished: Int32 = 0
            for dependency in node.dependencies {
                guard dependency >= 0, Int(dependency) < task.nodes.count, Int(dependency) != index else {
                    throw InvariantViolation("node \(node.id) has a bad dependency index \(dependency)")
                }
                if task.nodes[Int(dependency)].status != .completed { unfinished += 1 }
                dependents[Int(dependency)].append(Int32(index))
            }
            guard node.unfinishedDependencies == unfinished else {
                throw InvariantViolation("node \(node.id) counts \(node.unfinishedDependencies) unfinished dependencies, has \(unfinished)")
            }
            if task.cancelled && node.status == .pending {
                throw InvariantViolation("cancelled task \(task.id) has PENDING node \(node.id)")
            }
            if node.status == .running {
                guard let lease = node.lease else { throw InvariantViolation("RUNNING node \(node.id) has no lease") }
                guard unfinished == 0 else {
                    throw InvariantViolation("RUNNING node \(node.id) has \(unfinished) unfinished dependencies")
                }
                guard !lease.deadline.isNone, c.deadlines.deadline(of: lease.deadline) == lease.expiresAtMs else {
                    throw InvariantViolation("lease of node \(node.id) is not in the deadline queue at its expiry")
                }
                if let overdueBefore, lease.expiresAtMs < overdueBefore {
                    throw InvariantViolation("lease of node \(node.id) expired at \(lease.expiresAtMs), still held at \(c.nowMs)")
                }
                guard leaseIds.insert(lease.id).inserted else { throw InvariantViolation("lease \(lease.id) holds two nodes") }
                if lease.boundConnection != 0 {
                    guard c.bindingsByConnection[lease.boundConnection]?[.lease(ref)] == lease.id else {
                        throw InvariantViolation("lease of node \(node.id) bound to a connection that does not know it")
                    }
                }
                leases += 1
            } else if node.lease != nil {
                throw InvariantViolation("\(node.status.name) node \(node.id) has a lease")
            }
        }
        for (index, node) in task.nodes.enumerated() where node.dependents.sorted() != dependents[index].sorted() {
            throw InvariantViolation("dependents of node \(node.id) are \(Array(node.dependents)), should be \(dependents[index])")
        }
        guard counts == task.counts else { throw InvariantViolation("task \(task.id) counts \(task.counts), nodes say \(counts)") }
        let blocked = try blockedNodes(task)
        var blockedCount = 0
        for (index, node) in task.nodes.enumerated() {
            guard node.isBlocked == blocked[index] else {
                throw InvariantViolation("node \(node.id) blocked mark \(node.isBlocked), a fresh walk says \(blocked[index])")
            }
            if blocked[index] { blockedCount += 1 }
            if node.status == .pending {
                let blocking = node.dependencies.filter { task.nodes[Int($0)].status == .failed || blocked[Int($0)] }.count
                guard node.blockedDependencies == blocking else {
                    throw InvariantViolation("node \(node.id) counts \(node.blockedDependencies) failed or blocked dependencies, has \(blocking)")
                }
            }
        }
        guard task.blockedCount == blockedCount else {
            throw InvariantViolation("task \(task.id) counts \(task.blockedCount) blocked nodes, has \(blockedCount)")
        }
        return leases
    }

    /// Blocked: PENDING with a dependency that FAILED or is itself blocked. Iterative DFS.
    private static func blockedNodes(_ task: TaskRecord) throws -> [Bool] {
        let n = task.nodes.count
        var state = [UInt8](repeating: 0, count: n)   // 0 unknown, 1 on stack, 2 done
        var blocked = [Bool](repeating: false, count: n)
        for root in 0..<n where state[root] == 0 {
            var stack = [root]
            while let top = stack.last {
                if state[top] == 0 {
                    state[top] = 1
                    for dependency in task.nodes[top].dependencies where state[Int(dependency)] == 0 {
                        stack.append(Int(dependency))
                    }
                } else {
                    stack.removeLast()
                    if state[top] == 2 { continue }
                    if task.nodes[top].dependencies.contains(where: { state[Int($0)] != 2 }) {
                        throw InvariantViolation("dependency cycle through node \(task.nodes[top].id)")
                    }
                    state[top] = 2
                    // "Failed or blocked": does this dependency block its dependents?
                    blocked[top] = task.nodes[top].status == .pending && task.nodes[top].dependencies.contains {
                        task.nodes[Int($0)].status == .failed || blocked[Int($0)]
                    }
                }
            }
        }
        return blocked
    }

    private static func checkReady(_ task: TaskRecord, in c: Coordinator) throws {
        var queue = task.ready
        var queued: [Int32] = []
        while let index = queue.popFirst() { queued.append(index) }
        guard Set(queued).count == queued.count else {
            throw InvariantViolation("task \(task.id) has a node twice in its ready queue \(queued)")
        }
        guard queued == queued.sorted() else {
            throw InvariantViolation("task \(task.id) ready queue hands out \(queued), not in index order")
        }
        let runnable = task.nodes.indices.filter {
            task.nodes[$0].status == .pending && task.nodes[$0].unfinishedDependencies == 0
        }.map { Int32($0) }
        guard queued == runnable else {
            throw InvariantViolation("task \(task.id) ready queue \(queued), runnable nodes \(runnable)")
        }
        if !queued.isEmpty, let waiting = task.acquireWaiters.all.first(where: { c.waiters[$0] != nil }) {
            throw InvariantViolation("acquirer \(waiting) waits on task \(task.id) while nodes \(queued) are ready")
        }
    }

    private static func checkJournal(_ task: TaskRecord) throws {
        var perNode = [[Int32]](repeating: [], count: task.nodes.count)
        for (position, event) in task.events.enumerated() {
            guard event.seq == Int64(position) + 1 else {
                throw InvariantViolation("task \(task.id) event at \(position) has seq \(event.seq)")
            }
            guard event.node >= 0, Int(event.node) < task.nodes.count else {
                throw InvariantViolation("task \(task.id) event \(event.seq) names node \(event.node)")
            }
            perNode[Int(event.node)].append(Int32(position))
        }
        for (index, node) in task.nodes.enumerated() where node.events != perNode[index] {
            throw InvariantViolation("node \(node.id) lists events \(node.events), the journal has \(perNode[index])")
        }
    }

    /// Returns how many lock deadlines there are.
    private mutating func checkLocks(_ c: Coordinator, overdueBefore: Int64?) throws -> Int {
        guard c.fencingCounter >= lastFencingCounter else {
            throw InvariantViolation("the fencing counter went back from \(lastFencingCounter) to \(c.fencingCounter)")
        }
        lastFencingCounter = c.fencingCounter
        var tokens = Set<Int64>()
        var held = 0
        for (key, slot) in c.locks.keysAndSlots {
            guard slot >= 0, Int(slot) < c.locks.slotCapacity, let lock = c.locks[slot: slot], lock.lockKey == key else {
                throw InvariantViolation("lock key \(key) points at slot \(slot), which holds another")
            }
            guard !lock.deadline.isNone, c.deadlines.deadline(of: lock.deadline) == lock.expiresAtMs else {
                throw InvariantViolation("lock \(key) is not in the deadline queue at its expiry")
            }
            if let overdueBefore, lock.expiresAtMs < overdueBefore {
                throw InvariantViolation("lock \(key) expired at \(lock.expiresAtMs), still held at \(c.nowMs)")
            }
            guard tokens.insert(lock.fencingToken).inserted, lock.fencingToken > 0, lock.fencingToken <= c.fencingCounter else {
                throw InvariantViolation("lock \(key) fencing token \(lock.fencingToken) repeats or is outside 1...\(c.fencingCounter)")
            }
            if lock.boundConnection != 0 {
                guard c.bindingsByConnection[lock.boundConnection]?[.lock(key)] == lock.leaseId else {
                    throw InvariantViolation("lock \(key) bound to a connection that does not know it")
                }
            }
            held += 1
        }
        let occupied = (0..<Int32(c.locks.slotCapacity)).reduce(0) { $0 + (c.locks[slot: $1] == nil ? 0 : 1) }
        guard occupied == held else { throw InvariantViolation("\(occupied) lock slots in use for \(held) keys (two holders?)") }
        let sorted = c.locks.keysAndSlots.keys.map(\.text).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let listed = c.locks.sortedKeys().map(\.text)
        guard listed == sorted else {
            throw InvariantViolation("sorted lock keys \(listed) differ from the held keys \(sorted)")
        }
        return held
    }

    /// Returns how many waiter deadlines there are.
    private static func checkWaiters(_ c: Coordinator) throws -> Int {
        var lockWaiting: [String: Int] = [:]
        for (id, waiter) in c.waiters {
            guard waiter.id == id, !waiter.deadline.isNone else { throw InvariantViolation("waiter \(id) has no deadline") }
            guard c.waitersByConnection[waiter.connection]?.contains(id) == true else {
                throw InvariantViolation("waiter \(id) is not listed under its connection \(waiter.connection)")
            }
            switch waiter.kind {
            case let .lock(request):
                guard c.locks.contains(key: request.lockKey) else {
                    throw InvariantViolation("waiter \(id) waits for free key \(request.key)")
                }
                lockWaiting[request.key, default: 0] += 1
            case let .acquire(task, _, _, _):
                guard let record = c.taskSlots[Int(task)], !record.cancelled else {
                    throw InvariantViolation("waiter \(id) waits on a task that is gone or cancelled")
                }
                guard record.acquireWaiters.all.contains(id) else {
                    throw InvariantViolation("acquirer \(id) is not in its task's queue")
                }
            case let .events(task, _, _, _):
                guard let record = c.taskSlots[Int(task)] else { throw InvariantViolation("waiter \(id) reads a deleted task") }
                guard record.eventWaiters.all.contains(id) else {
                    throw InvariantViolation("reader \(id) is not in its task's queue")
                }
            }
        }
        guard lockWaiting == c.lockWaiterCounts else {
            throw InvariantViolation("lock waiter counts \(c.lockWaiterCounts), live waiters \(lockWaiting)")
        }
        for (connection, ids) in c.waitersByConnection {
            for id in ids where c.waiters[id]?.connection != connection {
                throw InvariantViolation("connection \(connection) lists waiter \(id), which is not its own")
            }
        }
        return c.waiters.count
    }

    /// Every release_on_disconnect binding names a live lease or lock of that connection.
    private static func checkBindings(_ c: Coordinator) throws {
        for (connection, bindings) in c.bindingsByConnection {
            for (binding, leaseId) in bindings {
                switch binding {
                case let .lease(ref):
                    guard Int(ref.task) < c.taskSlots.count, let task = c.taskSlots[Int(ref.task)],
                          Int(ref.index) < task.nodes.count, let lease = task.nodes[Int(ref.index)].lease,
                          lease.id == leaseId, lease.boundConnection == connection else {
                        throw InvariantViolation("connection \(connection) is bound to a lease that ended")
                    }
                case let .lock(key):
                    guard let lock = c.lock(key: key), lock.leaseId == leaseId, lock.boundConnection == connection else {
                        throw InvariantViolation("connection \(connection) is bound to lock \(key), which it no longer holds")
                    }
                }
            }
        }
    }
}
