import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd
import CoordinatorInvariants

/// A seeded random walk over every operation, checking after each step that the incrementally
/// kept state agrees with a recount from scratch, and that the checker itself catches broken books.
final class CoordinatorRandomWalkTests: XCTestCase {
    private final class Walk {
        let c: Coordinator
        let clock: ManualClock
        var rng: SplitMix
        var nextId: UInt64 = 1_000
        var taskIds: [UUID128] = []
        var parked: Set<UInt64> = []
        var closedWaiters: Set<UInt64> = []
        var resolved: [UInt64: Int] = [:]
        var step = 0
        var invariants = InvariantChecker()
        let seed: UInt64
        var label: String { "seed \(seed) step \(step)" }

        init(seed: UInt64) {
            (c, clock) = makeCoordinator(timeoutSecs: 3)
            self.seed = seed
            rng = SplitMix(seed: seed)
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

        /// The shared invariants (CoordinatorInvariants), plus what only the walk knows: which tasks
        /// it registered and has not deleted. Every operation expires what is due first, the walk
        /// runs expireDue right after moving the clock, and it makes nothing that ends at once
        /// (TTLs of a second or more, waits of 500 ms or more): nothing may be due here.
        func check() {
            XCTAssertEqual(Set(c.tasksById.keys), Set(liveTasks.map(\.id)), "tasks \(label)")
            do {
                try invariants.check(c, expiry: .nothingDue)
            } catch {
                XCTFail("\(error), \(label)")
            }
        }
    }

    func testRandomWalksKeepTheBooksStraight() throws {
        for seed: UInt64 in 1...10 {
            let walk = Walk(seed: seed)
            try walk.run(steps: 300) { self.testRun?.totalFailureCount ?? 0 }
            XCTAssertFalse(walk.taskIds.isEmpty)
        }
    }

    /// A small state with a bit of everything: a running node and two that wait on it, a bound
    /// lock and a request parked on it. Each case breaks one piece of bookkeeping by hand.
    func testTheCheckerCatchesBrokenBooks() throws {
        let cases: [(expected: String, corrupt: (Coordinator, ManualClock, TaskRecord) -> Void)] = [
            ("totals", { c, _, _ in c.totals.nodes += 1 }),
            ("nodes say", { _, _, task in task.counts[Int(NodeStatus.pending.rawValue)] += 1 }),
            ("unfinished dependencies", { _, _, task in task.nodes[1].unfinishedDependencies = 0 }),
            ("blocked mark", { _, _, task in task.nodes[2].blockedDependencies = 1 }),
            ("ready queue", { _, _, task in task.ready.insert(2) }),
            ("filed as", { _, _, task in task.indexedStatus = .failed }),
            ("ListTasks", { c, _, task in c.taskIndex.move(task.slot, from: .active, to: .failed) }),
            ("expired at", { _, clock, _ in clock.advance(ms: 400_000) }),
            ("went back", { c, _, _ in c.fencingCounter -= 1 }),
            ("lock waiter counts", { c, _, _ in c.lockWaiterCounts["k"] = 2 }),
            ("bound to lock", { c, _, _ in c.bindingsByConnection[9] = [.lock(LockKey("k")): uuid(5)] }),
            ("deadlines queued", { c, _, _ in _ = c.deadlines.schedule(1, for: .lock(slot: 0)) }),
        ]
        for (expected, corrupt) in cases {
            let (c, clock) = makeCoordinator()
            let task = try c.task(c.registerTask(goal: "t", context: bytes("{}"),
                                                 nodes: [node(uuid(1)), node(uuid(2), [uuid(1)]), node(uuid(3), [uuid(1)])]))
            _ = try c.mustAcquire(task.id)
            XCTAssertNotNil(try c.acquireLock(LockRequest(key: "k", owner: "o", ttlSecs: 5, boundConnection: 1)))
            _ = try c.acquireLock(LockRequest(key: "k", owner: "p"), connection: 2, waitMs: 1_000)
            var checker = InvariantChecker()
            XCTAssertNoThrow(try checker.check(c), "before breaking \(expected)")
            corrupt(c, clock, task)
            XCTAssertThrowsError(try checker.check(c)) { error in
                XCTAssertTrue("\(error)".contains(expected), "expected a violation about \(expected), got: \(error)")
            }
        }
    }

    /// Before expireDue runs, what is due is allowed to be there; after it, nothing overdue is,
    /// and only a lease made since with a zero TTL may end at this very instant.
    func testDueThingsAreOnlyABreachAfterExpiry() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 3)
        let task = try c.registerTask(goal: "t", context: bytes("{}"), nodes: [node(uuid(1)), node(uuid(2))])
        _ = try c.mustAcquire(task)
        clock.advance(ms: 5_000)
        var checker = InvariantChecker()
        XCTAssertNoThrow(try checker.check(c, expiry: .notRun))
        XCTAssertThrowsError(try checker.check(c, expiry: .ranNow))
        c.expireDue()
        XCTAssertNoThrow(try checker.check(c, expiry: .nothingDue))
        _ = try c.acquireNextNode(task: task, owner: "w", leaseTTLSecs: 0)
        XCTAssertNoThrow(try checker.check(c, expiry: .ranNow))
        XCTAssertThrowsError(try checker.check(c, expiry: .nothingDue))
    }
}
