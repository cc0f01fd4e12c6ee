import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

/// A seeded random walk over every operation, checking after each step that the
/// incrementally kept state agrees with a recount from scratch.
final class CoordinatorInvariantTests: XCTestCase {
    /// SplitMix64: deterministic, so a failure names its seed and step.
    private struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
        mutating func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[below(items.count)] }
    }

    private final class Walk {
        let c: Coordinator
        let clock: ManualClock
        var rng: Generator
        var nextId: UInt64 = 1_000
        var taskIds: [UUID128] = []
        var parked: Set<UInt64> = []
        var closedWaiters: Set<UInt64> = []
        var resolved: [UInt64: Int] = [:]
        var step = 0
        var lastFencingCounter: Int64 = 0
        let seed: UInt64
        var label: String { "seed \(seed) step \(step)" }

        init(seed: UInt64) {
            (c, clock) = makeCoordinator(timeoutSecs: 3)
            self.seed = seed
            rng = Generator(state: seed)
            c.onWaiterResolved = { [unowned self] waiter, outcome in
                self.resolved[waiter.id, default: 0] += 1
                XCTAssertTrue(self.parked.contains(waiter.id), self.label)
                XCTAssertNil(self.c.waiters[waiter.id], self.label)
                XCTAssertFalse(self.closedWaiters.contains(waiter.id), "a closed waiter was resolved, \(self.label)")
                if let ref = outcome.acquiredRef {
                    let node = self.c.task(slot: ref.task)!.nodes[Int(ref.index)]
                    XCTAssertEqual(node.status, .running, self.label)
                    if case let .acquire(_, owner, _, _) = waiter.kind { XCTAssertEqual(node.lease?.owner, owner) }
                }
                if let slot = outcome.grantedLockSlot {
                    XCTAssertNotNil(self.c.lock(slot: slot), self.label)
                }
            }
        }

        func freshId() -> UUID128 {
            nextId += 1
            return uuid(nextId)
        }

        var liveTasks: [TaskRecord] { taskIds.compactMap { c.tasksById[$0] } }

        func nodes(where predicate: (Node) -> Bool) -> [(TaskRecord, Node)] {
            liveTasks.flatMap { task in task.nodes.filter(predicate).map { (task, $0) } }
        }

        /// A valid batch: each node depends on existing nodes and on batch nodes of lower rank, where
        /// the ranks are a random order of the batch, so forward references occur without cycles.
        func definitions(count: Int, existing: [UUID128]) -> [NodeDefinition] {
            let ids = (0..<count).map { _ in freshId() }
            var ranks = Array(0..<count)
            for i in stride(from: count - 1, to: 0, by: -1) { ranks.swapAt(i, rng.below(i + 1)) }
            return ids.enumerated().map { offset, id in
                var dependencies: Set<UUID128> = []
                let lower = ids.indices.filter { ranks[$0] < ranks[offset] }.map { ids[$0] }
                for _ in 0..<rng.below(3) {
                    if rng.chance(60), let dependency = rng.pick(lower) {
                        dependencies.insert(dependency)
                    } else if let dependency = rng.pick(existing) {
                        dependencies.insert(dependency)
                    }
                }
                return NodeDefinition(id: id, dependencies: dependencies.sorted(), payloadSchema: bytes("{}"),
                                      maxAttempts: Int32(rng.below(3)))
            }
        }

        func park(_ answer: UInt64?) { if let answer { parked.insert(answer) } }

        /// Stops at the first step that fails, so a broken invariant reports once, with its step.
        func run(steps: Int, failures: () -> Int) throws {
            let before = failures()
            for _ in 0..<steps {
                step += 1
                try perform()
                check()
                if failures() > before { return }
            }
            // Shutdown answers everything still parked, once.
            c.endAllWaiters()
            XCTAssertTrue(c.waiters.isEmpty)
            for (id, times) in resolved { XCTAssertEqual(times, 1, "waiter \(id) resolved \(times) times") }
        }

        func perform() throws {
            let roll = rng.below(100)
            switch roll {
            case 0..<8:
                let count = rng.below(6)
                taskIds.append(try c.registerTask(goal: "t", context: bytes("{}"),
                                                  nodes: definitions(count: count, existing: [])))
            case 8..<14:
                guard let task = rng.pick(liveTasks) else { return }
                var defs = definitions(count: 1 + rng.below(3), existing: task.nodes.map(\.id))
                let invalid = rng.chance(10)
                if invalid { defs[defs.count - 1].dependencies.append(uuid(1)) }   // never registered
                let before = task.nodes.count
                do {
                    _ = try c.addNodes(task: task.id, nodes: defs)
                    XCTAssertFalse(task.cancelled || invalid, label)
                } catch let error as CoordinatorError {
                    XCTAssertEqual(error.reason, task.cancelled ? .taskClosed : .invalidDAG, "\(error.message) \(label)")
                    XCTAssertEqual(task.nodes.count, before, label)
                }
            case 14..<34:
                guard let task = rng.pick(liveTasks) else { return }
                let waitMs: Int64 = [0, 0, 500, 4_000][rng.below(4)]
                do {
                    let answer = try c.acquireNextNode(task: task.id, owner: "o\(rng.below(5))",
                                                       leaseTTLSecs: rng.chance(50) ? nil : Int64(1 + rng.below(4)),
                                                       releaseOnDisconnect: rng.chance(40),
                                                       connection: UInt64(1 + rng.below(4)), waitMs: waitMs)
                    XCTAssertFalse(task.cancelled, label)
                    switch answer {
                    case let .node(ref): XCTAssertEqual(task.nodes[Int(ref.index)].status, .running, label)
                    case .nothing: XCTAssertEqual(waitMs, 0, label)
                    case let .parked(id):
                        XCTAssertGreaterThan(waitMs, 0, label)
                        park(id)
                    }
                } catch let error as CoordinatorError {
                    XCTAssertTrue(task.cancelled, label)
                    XCTAssertEqual(error.reason, .taskClosed)
                }
            case 34..<46:
                guard let (task, node) = rng.pick(nodes { $0.status == .running }) else { return }
                _ = try c.completeNode(task: task.id, node: node.id, lease: node.lease!.id, result: bytes("1"))
            case 46..<50:
                guard let (task, node) = rng.pick(nodes { $0.status == .running }) else { return }
                _ = try c.failNode(task: task.id, node: node.id, lease: node.lease!.id, error: bytes("1"))
            case 50..<54:
                guard let (task, node) = rng.pick(nodes { $0.status == .running }) else { return }
                try c.heartbeatNode(task: task.id, node: node.id, lease: node.lease!.id,
                                    leaseTTLSecs: Int64(1 + rng.below(4)))
            case 54..<59:
                guard let (task, node) = rng.pick(nodes { $0.status == .failed }) else { return }
                if task.cancelled {
                    XCTAssertRefused(try c.retryNode(task: task.id, node: node.id), reason: .taskClosed)
                } else {
                    try c.retryNode(task: task.id, node: node.id)
                }
            case 59..<61:
                guard let task = rng.pick(liveTasks) else { return }
                try c.cancelTask(task: task.id)
            case 61..<64:
                guard let task = rng.pick(liveTasks) else { return }
                if task.status == .active {
                    XCTAssertRefused(try c.deleteTask(task: task.id), reason: .taskClosed)
                } else {
                    try c.deleteTask(task: task.id)
                }
            case 64..<78:
                clock.advance(ms: Int64(rng.below(2_500)))
                c.expireDue()
            case 78..<82:
                let connection = UInt64(1 + rng.below(4))
                closedWaiters.formUnion(c.waitersByConnection[connection] ?? [])
                c.connectionClosed(connection)
            case 82..<89:
                let key = "k\(rng.below(3))"
                let connection = UInt64(1 + rng.below(4))
                let request = LockRequest(key: key, owner: "o\(rng.below(3))", ttlSecs: Int64(1 + rng.below(4)),
                                          boundConnection: rng.chance(40) ? connection : 0)
                if case let .parked(id) = try c.acquireLock(request, connection: connection,
                                                            waitMs: [0, 1_000, 5_000][rng.below(3)]) {
                    park(id)
                }
            case 89..<93:
                guard let lock = rng.pick(c.locksSortedByKey()) else { return }
                try c.releaseLock(key: lock.key, lease: lock.leaseId)
            case 93..<96:
                guard let task = rng.pick(liveTasks) else { return }
                let nodeId = rng.chance(50) ? rng.pick(task.nodes.map(\.id)) : nil
                let answer = try c.readEvents(task: task.id, node: nodeId, afterSeq: Int64(task.events.count),
                                              limit: 5, connection: UInt64(1 + rng.below(4)),
                                              waitMs: rng.chance(70) ? 1_500 : 0)
                if case let .parked(id) = answer { park(id) }
            default:
                guard let task = rng.pick(liveTasks), let node = rng.pick(task.nodes) else { return }
                _ = try c.commitEvent(task: task.id, node: node.id, lease: node.lease?.id, actionType: "NOTE",
                                      payload: bytes("{}"))
            }
        }

        func check() {
            var totalCounts = [0, 0, 0, 0], totalNodes = 0, totalEvents = 0, running = 0
            for task in liveTasks {
                XCTAssertTrue(c.tasksById[task.id] === task, label)
                var counts = [0, 0, 0, 0], blocked = 0
                for (index, node) in task.nodes.enumerated() {
                    counts[Int(node.status.rawValue)] += 1
                    if node.isBlocked { blocked += 1 }
                    XCTAssertEqual(c.nodeRefs[node.id], NodeRef(task: task.slot, index: Int32(index)), label)
                    let unfinished = node.dependencies.filter { task.nodes[Int($0)].status != .completed }.count
                    XCTAssertEqual(Int(node.unfinishedDependencies), unfinished, "unfinished of \(index) \(label)")
                    let blocking = node.dependencies.filter { c.contributesBlock(task.nodes[Int($0)]) }.count
                    if node.status == .pending {
                        XCTAssertEqual(Int(node.blockedDependencies), blocking, "blocked deps of \(index) \(label)")
                    }
                    for dependency in node.dependencies {
                        XCTAssertTrue(task.nodes[Int(dependency)].dependents.contains(Int32(index)), label)
                    }
                    if node.status == .running {
                        running += 1
                        guard let lease = node.lease else { XCTFail("RUNNING without lease \(label)"); continue }
                        XCTAssertFalse(lease.deadline.isNone, label)
                        XCTAssertEqual(c.deadlines.deadline(of: lease.deadline), lease.expiresAtMs, label)
                        XCTAssertGreaterThan(lease.expiresAtMs, clock.wallMs, "a due lease outlived expireDue \(label)")
                        XCTAssertEqual(node.unfinishedDependencies, 0, label)
                        if lease.boundConnection != 0 {
                            XCTAssertEqual(c.bindingsByConnection[lease.boundConnection]?[
                                .lease(NodeRef(task: task.slot, index: Int32(index)))], lease.id, label)
                        }
                    } else {
                        XCTAssertNil(node.lease, "lease on a \(node.status.name) node \(label)")
                    }
                    if task.cancelled { XCTAssertNotEqual(node.status, .pending, label) }
                    for position in node.events { XCTAssertEqual(task.events[Int(position)].node, Int32(index), label) }
                }
                XCTAssertEqual(task.counts, counts, "counts \(label)")
                XCTAssertEqual(task.blockedCount, blocked, "blockedCount \(label)")
                XCTAssertEqual(task.indexedStatus, task.status, label)
                XCTAssertEqual(task.events.map(\.seq), (0..<task.events.count).map { Int64($0) + 1 }, label)
                XCTAssertEqual(task.nodes.map(\.events.count).reduce(0, +), task.events.count, label)

                // Ready queue: exactly the PENDING nodes whose dependencies are all COMPLETED.
                var ready = task.ready
                var inQueue: [Int32] = []
                while let index = ready.popFirst() { inQueue.append(index) }
                XCTAssertEqual(inQueue, inQueue.sorted(), label)
                XCTAssertEqual(Set(inQueue).count, inQueue.count, "duplicate in ready queue \(label)")
                for index in inQueue {
                    let node = task.nodes[Int(index)]
                    XCTAssertEqual(node.status, .pending, "ready node \(index) is \(node.status.name) \(label)")
                    XCTAssertEqual(node.unfinishedDependencies, 0, label)
                    XCTAssertFalse(node.isBlocked, label)
                }
                let runnable = task.nodes.indices.filter {
                    task.nodes[$0].status == .pending && task.nodes[$0].unfinishedDependencies == 0
                }.map { Int32($0) }
                XCTAssertEqual(inQueue, runnable, "ready queue \(label)")
                // Nobody waits on a task that has runnable nodes.
                if !inQueue.isEmpty {
                    let live = task.acquireWaiters.all.filter { c.waiters[$0] != nil }
                    XCTAssertTrue(live.isEmpty, "acquirers parked beside runnable nodes \(label)")
                }

                totalCounts = zip(totalCounts, counts).map(+)
                totalNodes += task.nodes.count
                totalEvents += task.events.count
            }
            XCTAssertEqual(c.totals.tasks, liveTasks.count, label)
            XCTAssertEqual(c.totals.nodes, totalNodes, label)
            XCTAssertEqual(c.totals.events, totalEvents, label)
            XCTAssertEqual(c.totals.nodeCounts, totalCounts, label)
            XCTAssertEqual(c.nodeRefs.count, totalNodes, label)
            for status in TaskStatus.allCases {
                let listed = (try? c.listTasks(status: status, limit: 10_000, after: nil).map(\.id)) ?? []
                let expected = liveTasks.filter { $0.status == status }.sorted { $0.slot > $1.slot }.map(\.id)
                XCTAssertEqual(listed, expected, "ListTasks \(status.name) \(label)")
            }

            // Locks: each has its deadline; waiter counts match the live waiters.
            for lock in c.locksSortedByKey() {
                XCTAssertEqual(c.deadlines.deadline(of: lock.deadline), lock.expiresAtMs, label)
                XCTAssertGreaterThan(lock.expiresAtMs, clock.wallMs, label)
                if lock.boundConnection != 0 {
                    XCTAssertEqual(c.bindingsByConnection[lock.boundConnection]?[.lock(lock.key)], lock.leaseId, label)
                }
            }
            let tokens = c.locksSortedByKey().map(\.fencingToken)
            XCTAssertEqual(Set(tokens).count, tokens.count, "fencing tokens are unique \(label)")
            XCTAssertTrue(tokens.allSatisfy { $0 >= 1 && $0 <= c.fencingCounter }, label)
            XCTAssertGreaterThanOrEqual(c.fencingCounter, lastFencingCounter, label)
            lastFencingCounter = c.fencingCounter
            var lockWaiters: [String: Int] = [:]
            for waiter in c.waiters.values {
                XCTAssertFalse(waiter.deadline.isNone, label)
                if case let .lock(request) = waiter.kind {
                    lockWaiters[request.key, default: 0] += 1
                    XCTAssertNotNil(c.lock(key: request.key), "a waiter on a free key \(label)")
                }
            }
            XCTAssertEqual(c.lockWaiterCounts, lockWaiters, label)
            XCTAssertEqual(c.deadlines.count, running + c.lockCount + c.waiters.count, "deadlines \(label)")
            // Nothing due is left once expireDue ran (every operation runs it first).
            if let earliest = c.nextDeadlineMs { XCTAssertGreaterThan(earliest, clock.wallMs, label) }
        }
    }

    func testRandomWalksKeepTheBooksStraight() throws {
        for seed: UInt64 in 1...10 {
            let walk = Walk(seed: seed)
            try walk.run(steps: 300) { self.testRun?.totalFailureCount ?? 0 }
            XCTAssertFalse(walk.taskIds.isEmpty)
        }
    }
}
