// Fuzz support: the Coordinator's invariants, checked from scratch against its indexes.
// A broken invariant traps with a description, which libFuzzer records as a crash.

import AgentdBase
import AgentdCore

/// Stops the run with a message; libFuzzer saves the input that got here.
func invariantFailure(_ message: String) -> Never {
    fatalError("invariant broken: \(message)")
}

/// A small deterministic generator for the choices a target makes from its input.
struct SplitMix {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ bound: Int) -> Int { bound <= 1 ? 0 : Int(next() % UInt64(bound)) }
}

enum Invariants {
    /// Recomputes everything the Coordinator keeps incrementally and compares:
    /// - a RUNNING node has exactly one lease, live in the deadline queue at its expiry, and
    ///   no lease id holds two nodes; a node that is not RUNNING has none;
    /// - per-task and global counts match the nodes; blocked marks match a fresh walk;
    ///   unfinished-dependency counts and dependents match the dependency lists;
    /// - the ready queue holds exactly the runnable nodes (PENDING, every dependency
    ///   COMPLETED, task not cancelled), once each; no acquirer waits while one is ready;
    /// - a lock key has at most one holder; tokens are unique and never above the counter;
    ///   nobody waits for a free key;
    /// - every deadline in the queue belongs to a live lease, lock or waiter;
    /// - the journal's seqs run 1..n and each node lists its own events.
    static func check(_ c: Coordinator) {
        var deadlinesExpected = 0
        var leaseIds = Set<UUID128>()
        var nodeCounts = [0, 0, 0, 0]
        var nodes = 0, events = 0, tasks = 0
        for (slot, entry) in c.taskSlots.enumerated() {
            guard let task = entry else { continue }
            tasks += 1
            guard task.slot == Int32(slot), c.tasksById[task.id] === task else {
                invariantFailure("task in slot \(slot) is not the one found by its id")
            }
            deadlinesExpected += checkNodes(of: task, in: c, leaseIds: &leaseIds)
            for (index, node) in task.nodes.enumerated() { nodeCounts[Int(node.status.rawValue)] += 1; _ = index }
            nodes += task.nodes.count
            events += task.events.count
            checkReady(task, in: c)
            checkJournal(task)
            guard task.indexedStatus == task.status else {
                invariantFailure("task \(task.id) filed as \(task.indexedStatus) but is \(task.status)")
            }
        }
        guard c.tasksById.count == tasks else { invariantFailure("\(c.tasksById.count) task ids for \(tasks) tasks") }
        guard c.nodeRefs.count == nodes else { invariantFailure("\(c.nodeRefs.count) node refs for \(nodes) nodes") }
        guard c.totals.tasks == tasks, c.totals.nodes == nodes, c.totals.events == events,
              c.totals.nodeCounts == nodeCounts else {
            invariantFailure("totals \(c.totals) but the tasks hold \(tasks) tasks, \(nodes) nodes \(nodeCounts), \(events) events")
        }
        deadlinesExpected += checkLocks(c)
        deadlinesExpected += checkWaiters(c)
        checkBindings(c)
        guard c.deadlines.count == deadlinesExpected else {
            invariantFailure("\(c.deadlines.count) deadlines queued for \(deadlinesExpected) leases, locks and waiters")
        }
    }

    /// Returns how many lease deadlines the task's nodes hold.
    private static func checkNodes(of task: TaskRecord, in c: Coordinator, leaseIds: inout Set<UUID128>) -> Int {
        var counts = [0, 0, 0, 0]
        var leases = 0
        var dependents = [[Int32]](repeating: [], count: task.nodes.count)
        for (index, node) in task.nodes.enumerated() {
            guard let ref = c.nodeRefs[node.id], ref.task == task.slot, ref.index == Int32(index) else {
                invariantFailure("node \(node.id) is not found at its place")
            }
            counts[Int(node.status.rawValue)] += 1
            if node.status == .running {
                guard let lease = node.lease else { invariantFailure("RUNNING node \(node.id) has no lease") }
                guard !lease.deadline.isNone, c.deadlines.deadline(of: lease.deadline) == lease.expiresAtMs else {
                    invariantFailure("lease of node \(node.id) is not in the deadline queue at its expiry")
                }
                guard leaseIds.insert(lease.id).inserted else { invariantFailure("lease \(lease.id) holds two nodes") }
                if lease.boundConnection != 0 {
                    guard c.bindingsByConnection[lease.boundConnection]?[.lease(ref)] == lease.id else {
                        invariantFailure("lease of node \(node.id) bound to a connection that does not know it")
                    }
                }
                leases += 1
            } else if node.lease != nil {
                invariantFailure("\(node.status.name) node \(node.id) has a lease")
            }
            var unfinished: Int32 = 0
            for dependency in node.dependencies {
                guard dependency >= 0, Int(dependency) < task.nodes.count, Int(dependency) != index else {
                    invariantFailure("node \(node.id) has a bad dependency index \(dependency)")
                }
                if task.nodes[Int(dependency)].status != .completed { unfinished += 1 }
                dependents[Int(dependency)].append(Int32(index))
            }
            guard node.unfinishedDependencies == unfinished else {
                invariantFailure("node \(node.id) counts \(node.unfinishedDependencies) unfinished dependencies, has \(unfinished)")
            }
        }
        for (index, node) in task.nodes.enumerated() where node.dependents.sorted() != dependents[index].sorted() {
            invariantFailure("dependents of node \(node.id) are \(node.dependents), should be \(dependents[index])")
        }
        guard counts == task.counts else { invariantFailure("task \(task.id) counts \(task.counts), nodes say \(counts)") }
        let blocked = blockedNodes(task)
        var blockedCount = 0
        for (index, node) in task.nodes.enumerated() {
            guard node.isBlocked == blocked[index] else {
                invariantFailure("node \(node.id) blocked mark \(node.isBlocked), a fresh walk says \(blocked[index])")
            }
            if blocked[index] { blockedCount += 1 }
        }
        guard task.blockedCount == blockedCount else {
            invariantFailure("task \(task.id) counts \(task.blockedCount) blocked nodes, has \(blockedCount)")
        }
        return leases
    }

    /// Blocked: PENDING with a dependency that FAILED or is itself blocked. Iterative DFS.
    private static func blockedNodes(_ task: TaskRecord) -> [Bool] {
        let n = task.nodes.count
        var state = [UInt8](repeating: 0, count: n)   // 0 unknown, 1 on stack, 2 done
        var blocked = [Bool](repeating: false, count: n)
        // "Failed or blocked": does this node block its dependents?
        func blocks(_ i: Int) -> Bool { task.nodes[i].status == .failed || blocked[i] }
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
                    if state[top] == 1 {
                        for dependency in task.nodes[top].dependencies where state[Int(dependency)] != 2 {
                            invariantFailure("dependency cycle through node \(task.nodes[top].id)")
                        }
                    }
                    state[top] = 2
                    blocked[top] = task.nodes[top].status == .pending
                        && task.nodes[top].dependencies.contains { blocks(Int($0)) }
                }
            }
        }
        return blocked
    }

    private static func checkReady(_ task: TaskRecord, in c: Coordinator) {
        var queue = task.ready
        var queued = Set<Int32>()
        while let index = queue.popFirst() {
            guard queued.insert(index).inserted else { invariantFailure("node \(index) twice in the ready queue") }
        }
        var runnable = Set<Int32>()
        if !task.cancelled {
            for (index, node) in task.nodes.enumerated() where node.status == .pending && node.unfinishedDependencies == 0 {
                runnable.insert(Int32(index))
            }
        }
        guard queued == runnable else {
            invariantFailure("task \(task.id) ready queue \(queued.sorted()), runnable nodes \(runnable.sorted())")
        }
        if !queued.isEmpty, let waiting = task.acquireWaiters.all.first(where: { c.waiters[$0] != nil }) {
            invariantFailure("acquirer \(waiting) waits on task \(task.id) while nodes \(queued.sorted()) are ready")
        }
    }

    private static func checkJournal(_ task: TaskRecord) {
        var perNode = [[Int32]](repeating: [], count: task.nodes.count)
        for (position, event) in task.events.enumerated() {
            guard event.seq == Int64(position) + 1 else { invariantFailure("event at \(position) has seq \(event.seq)") }
            guard event.node >= 0, Int(event.node) < task.nodes.count else { invariantFailure("event names node \(event.node)") }
            perNode[Int(event.node)].append(Int32(position))
        }
        for (index, node) in task.nodes.enumerated() where node.events != perNode[index] {
            invariantFailure("node \(node.id) lists events \(node.events), the journal has \(perNode[index])")
        }
    }

    /// Returns how many lock deadlines there are.
    private static func checkLocks(_ c: Coordinator) -> Int {
        var tokens = Set<Int64>()
        var held = 0
        for (key, slot) in c.lockSlotsByKey {
            guard Int(slot) < c.lockSlots.count, let lock = c.lockSlots[Int(slot)], lock.key == key else {
                invariantFailure("lock key \(key) points at slot \(slot), which holds another")
            }
            guard !lock.deadline.isNone, c.deadlines.deadline(of: lock.deadline) == lock.expiresAtMs else {
                invariantFailure("lock \(key) is not in the deadline queue at its expiry")
            }
            guard tokens.insert(lock.fencingToken).inserted, lock.fencingToken <= c.fencingCounter, lock.fencingToken > 0 else {
                invariantFailure("lock \(key) fencing token \(lock.fencingToken) repeats or passes the counter \(c.fencingCounter)")
            }
            if lock.boundConnection != 0 {
                guard c.bindingsByConnection[lock.boundConnection]?[.lock(key)] == lock.leaseId else {
                    invariantFailure("lock \(key) bound to a connection that does not know it")
                }
            }
            held += 1
        }
        let occupied = c.lockSlots.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        guard occupied == held else { invariantFailure("\(occupied) lock slots in use for \(held) keys (two holders?)") }
        let sorted = c.lockSlotsByKey.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        guard Array(c.sortedLockKeys.keys(withPrefix: "")) == sorted else {
            invariantFailure("sorted lock keys \(c.sortedLockKeys.keys(withPrefix: "")) differ from the held keys \(sorted)")
        }
        return held
    }

    /// Returns how many waiter deadlines there are.
    private static func checkWaiters(_ c: Coordinator) -> Int {
        var lockWaiting: [String: Int] = [:]
        for (id, waiter) in c.waiters {
            guard waiter.id == id, !waiter.deadline.isNone else { invariantFailure("waiter \(id) has no deadline") }
            guard c.waitersByConnection[waiter.connection]?.contains(id) == true else {
                invariantFailure("waiter \(id) is not listed under its connection \(waiter.connection)")
            }
            switch waiter.kind {
            case let .lock(request):
                guard c.lockSlotsByKey[request.key] != nil else { invariantFailure("waiter \(id) waits for free key \(request.key)") }
                lockWaiting[request.key, default: 0] += 1
            case let .acquire(task, _, _, _):
                guard let record = c.taskSlots[Int(task)], !record.cancelled else {
                    invariantFailure("waiter \(id) waits on a task that is gone or cancelled")
                }
                guard record.acquireWaiters.all.contains(id) else { invariantFailure("acquirer \(id) is not in its task's queue") }
            case let .events(task, _, _, _):
                guard let record = c.taskSlots[Int(task)] else { invariantFailure("waiter \(id) reads a deleted task") }
                guard record.eventWaiters.all.contains(id) else { invariantFailure("reader \(id) is not in its task's queue") }
            }
        }
        guard lockWaiting == c.lockWaiterCounts else {
            invariantFailure("lock waiter counts \(c.lockWaiterCounts), live waiters \(lockWaiting)")
        }
        for (connection, ids) in c.waitersByConnection {
            for id in ids where c.waiters[id]?.connection != connection {
                invariantFailure("connection \(connection) lists waiter \(id), which is not its own")
            }
        }
        return c.waiters.count
    }

    /// Every release_on_disconnect binding names a live lease or lock of that connection.
    private static func checkBindings(_ c: Coordinator) {
        for (connection, bindings) in c.bindingsByConnection {
            for (binding, leaseId) in bindings {
                switch binding {
                case let .lease(ref):
                    guard let task = c.taskSlots[Int(ref.task)], let lease = task.nodes[Int(ref.index)].lease,
                          lease.id == leaseId, lease.boundConnection == connection else {
                        invariantFailure("connection \(connection) is bound to a lease that ended")
                    }
                case let .lock(key):
                    guard let lock = c.lock(key: key), lock.leaseId == leaseId, lock.boundConnection == connection else {
                        invariantFailure("connection \(connection) is bound to lock \(key), which it no longer holds")
                    }
                }
            }
        }
    }
}
