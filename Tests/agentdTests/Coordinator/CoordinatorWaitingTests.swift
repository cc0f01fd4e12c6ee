import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

/// Parked AcquireNextNode requests (wait_ms).
final class CoordinatorParkedAcquireTests: XCTestCase {
    func testAcquireParksOnlyWithWaitAndNothingRunnable() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1), b = uuid(2)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a), node(b, [a])])
        // Something runnable: served at once even with wait_ms.
        guard case let .node(ref) = try c.acquireNextNode(task: t, owner: "w", connection: 1, waitMs: 1_000) else {
            return XCTFail("a is runnable")
        }
        XCTAssertEqual(c.nodeId(ref), a)
        XCTAssertEqual(try c.acquireNextNode(task: t, owner: "w", connection: 1, waitMs: 0), .nothing)
        XCTAssertTrue(c.waiters.isEmpty)
        let id = try c.mustPark(t, connection: 1, waitMs: 1_000)
        XCTAssertNotNil(c.waiters[id])
        XCTAssertEqual(c.deadlines.count, 2, "the lease and the parked request")
    }

    func testCompletingADependencyServesParkedAcquirersInArrivalOrder() throws {
        let (c, _) = makeCoordinator()
        let log = ParkedAnswers(c)
        let a = uuid(1), x = uuid(2), y = uuid(3)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a), node(x, [a]), node(y, [a])])
        let (_, la) = try c.mustAcquire(t)
        let w1 = try c.mustPark(t, owner: "first", connection: 1)
        let w2 = try c.mustPark(t, owner: "second", connection: 2)
        let w3 = try c.mustPark(t, owner: "third", connection: 3)
        XCTAssertTrue(log.entries.isEmpty)

        _ = try c.completeNode(task: t, node: a, lease: la, result: bytes("1"))
        XCTAssertEqual(log.ids, [w1, w2], "two nodes, the two oldest waiters, in arrival order")
        XCTAssertEqual(log.outcome(of: w1)?.acquiredRef.map(c.nodeId), x, "first waiter, first node")
        XCTAssertEqual(log.outcome(of: w2)?.acquiredRef.map(c.nodeId), y)
        XCTAssertEqual(try c.nodeRecord(t, x).lease?.owner, "first")
        XCTAssertEqual(try c.nodeRecord(t, y).lease?.owner, "second")
        XCTAssertEqual(try c.status(t, x), .running)
        XCTAssertEqual(try c.status(t, y), .running)
        XCTAssertNotNil(c.waiters[w3], "the third still waits")
        XCTAssertNil(c.waiters[w1])
        XCTAssertTrue(try c.task(t).ready.isEmpty)
        XCTAssertEqual(c.deadlines.count, 3, "two leases and the third waiter")
        XCTAssertEqual(c.counters.acquiredNodes, 3)
    }

    func testWaiterTimesOutAtExactlyItsDeadlineWithNothing() throws {
        let (c, clock) = makeCoordinator()
        let log = ParkedAnswers(c)
        let a = uuid(1), b = uuid(2)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a), node(b, [a])])
        let (_, la) = try c.mustAcquire(t)
        let w = try c.mustPark(t, connection: 1, waitMs: 1_000)
        XCTAssertEqual(c.nextDeadlineMs, clock.wallMs + 1_000)
        clock.advance(ms: 999)
        c.expireDue()
        XCTAssertTrue(log.entries.isEmpty, "one millisecond early")
        clock.advance(ms: 1)
        c.expireDue()
        XCTAssertEqual(log.ids, [w])
        XCTAssertEqual(log.outcome(of: w)?.isNothing, true)
        if case let .nothing(kind)? = log.outcome(of: w), case let .acquire(slot, owner, _, _) = kind {
            XCTAssertEqual(slot, try c.task(t).slot)
            XCTAssertEqual(owner, "w")
        } else {
            XCTFail("outcome should be nothing for an acquire")
        }
        XCTAssertNil(c.waiters[w])
        XCTAssertEqual(c.deadlines.count, 1, "only the lease")
        // A node made runnable afterwards stays in the ready queue for the next caller.
        _ = try c.completeNode(task: t, node: a, lease: la, result: bytes("1"))
        XCTAssertEqual(log.entries.count, 1)
        XCTAssertEqual(try c.status(t, b), .pending)
        XCTAssertEqual(try c.mustAcquire(t).0, b)
    }

    func testWaiterWhoseConnectionClosesIsNeverResolvedAndTakesNoNode() throws {
        let (c, clock) = makeCoordinator()
        let log = ParkedAnswers(c)
        let a = uuid(1), b = uuid(2)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a), node(b, [a])])
        let (_, la) = try c.mustAcquire(t)
        let gone = try c.mustPark(t, owner: "gone", connection: 1, waitMs: 5_000)
        let stays = try c.mustPark(t, owner: "stays", connection: 2, waitMs: 5_000)
        c.connectionClosed(1)
        XCTAssertNil(c.waiters[gone])
        XCTAssertEqual(c.deadlines.count, 2, "lease and the live waiter; the gone one's deadline is cancelled")
        _ = try c.completeNode(task: t, node: a, lease: la, result: bytes("1"))
        XCTAssertEqual(log.ids, [stays])
        XCTAssertEqual(try c.nodeRecord(t, b).lease?.owner, "stays")
        clock.advance(ms: 10_000)
        c.expireDue()
        XCTAssertEqual(log.count(of: gone), 0, "never resolved, not even at its deadline")
    }

    func testOnlyClosedWaiterLeavesNodeInReadyQueue() throws {
        let (c, _) = makeCoordinator()
        let log = ParkedAnswers(c)
        let a = uuid(1), b = uuid(2)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a), node(b, [a])])
        let (_, la) = try c.mustAcquire(t)
        _ = try c.mustPark(t, connection: 1)
        c.connectionClosed(1)
        _ = try c.completeNode(task: t, node: a, lease: la, result: bytes("1"))
        XCTAssertTrue(log.entries.isEmpty)
        XCTAssertEqual(try c.status(t, b), .pending)
        XCTAssertEqual(try c.task(t).ready.first, 1)
    }

    func testAddNodesWakesAParkedAcquirer() throws {
        let (c, _) = makeCoordinator()
        let log = ParkedAnswers(c)
        let a = uuid(1), n = uuid(2)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        _ = try c.mustAcquire(t)
        let w = try c.mustPark(t, owner: "parked")
        _ = try c.addNodes(task: t, nodes: [node(n)])
        XCTAssertEqual(log.ids, [w])
        XCTAssertEqual(log.outcome(of: w)?.acquiredRef.map(c.nodeId), n)
        XCTAssertEqual(try c.nodeRecord(t, n).lease?.owner, "parked")
    }

    func testRetryNodeWakesAParkedAcquirer() throws {
        let (c, _) = makeCoordinator()
        let log = ParkedAnswers(c)
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        let (_, la) = try c.mustAcquire(t)
        _ = try c.failNode(task: t, node: a, lease: la, error: bytes("\"x\""))
        let w = try c.mustPark(t, owner: "parked")
        try c.retryNode(task: t, node: a)
        XCTAssertEqual(log.outcome(of: w)?.acquiredRef.map(c.nodeId), a)
        XCTAssertEqual(try c.status(t, a), .running)
        XCTAssertEqual(try c.nodeRecord(t, a).attempts, 1, "attempts reset by retry, then this acquire")
    }

    func testLeaseExpiryWakesOneParkedAcquirer() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 10)
        let log = ParkedAnswers(c)
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        let (_, old) = try c.mustAcquire(t, owner: "old")
        let w1 = try c.mustPark(t, owner: "p1", connection: 1, waitMs: 60_000, leaseTTLSecs: 30)
        let w2 = try c.mustPark(t, owner: "p2", connection: 2, waitMs: 60_000)
        clock.advance(ms: 10_000)
        c.expireDue()
        XCTAssertEqual(log.ids, [w1], "one node, one waiter")
        XCTAssertNotNil(c.waiters[w2])
        let record = try c.nodeRecord(t, a)
        XCTAssertEqual(record.status, .running)
        XCTAssertEqual(record.lease?.owner, "p1")
        XCTAssertNotEqual(record.lease?.id, old)
        XCTAssertEqual(record.lease?.expiresAtMs, clock.wallMs + 30_000, "the waiter's own lease_ttl_secs")
        XCTAssertEqual(record.attempts, 2)
        XCTAssertEqual(try c.task(t).events.map(\.actionType), ["LEASE_EXPIRED"])
    }

    func testServedWaiterWithReleaseOnDisconnectIsBoundToItsConnection() throws {
        let (c, _) = makeCoordinator()
        _ = ParkedAnswers(c)
        let a = uuid(1), b = uuid(2)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a), node(b, [a])])
        let (_, la) = try c.mustAcquire(t)
        _ = try c.mustPark(t, connection: 5, releaseOnDisconnect: true)
        _ = try c.completeNode(task: t, node: a, lease: la, result: bytes("1"))
        XCTAssertEqual(try c.nodeRecord(t, b).lease?.boundConnection, 5)
        c.connectionClosed(5)
        XCTAssertEqual(try c.status(t, b), .pending)
        XCTAssertTrue(payloadText(try c.task(t).events.last?.payload).contains("\"reason\":\"disconnect\""))
    }

    /// The timer fires late (the loop was busy): the lease expired at 10 s while the waiter still
    /// waited (its deadline is 12 s). The waiter should get the node, as it would have had the
    /// timer fired on time; Coordinator.expireDue resolves the waiter with nothing first and serves
    /// only after the loop, so the node is left in the ready queue instead.
    func testLateTimerStillServesAWaiterThatWasParkedWhenTheLeaseExpired() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 10)
        let log = ParkedAnswers(c)
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        _ = try c.mustAcquire(t)
        let w = try c.mustPark(t, owner: "parked", waitMs: 12_000)
        clock.advance(ms: 15_000)
        c.expireDue()
        XCTAssertEqual(log.outcome(of: w)?.acquiredRef.map(c.nodeId), a,
                       "lease expired at 10 s, before the waiter's deadline at 12 s")
    }
}

/// Parked AcquireResourceLock requests and fencing tokens.
final class CoordinatorLockWaiterTests: XCTestCase {
    func testReleaseAndExpiryHandTheKeyToWaitersInFIFOOrder() throws {
        let (c, clock) = makeCoordinator()
        let log = ParkedAnswers(c)
        let holder = c.lock(slot: try c.acquireLock(LockRequest(key: "k", owner: "holder", ttlSecs: 60))!)!
        XCTAssertEqual(try c.acquireLock(LockRequest(key: "k", owner: "x"), connection: 1, waitMs: 0), .held)
        let w1 = try c.mustParkLock(LockRequest(key: "k", owner: "w1", ttlSecs: 5), connection: 1)
        let w2 = try c.mustParkLock(LockRequest(key: "k", owner: "w2", ttlSecs: 5), connection: 2)
        let w3 = try c.mustParkLock(LockRequest(key: "k", owner: "w3", ttlSecs: 5), connection: 3)
        XCTAssertEqual(c.waiterCount(forLock: "k"), 3)
        XCTAssertEqual(c.waiterCount(forLock: "other"), 0)

        try c.releaseLock(key: "k", lease: holder.leaseId)
        XCTAssertEqual(log.ids, [w1])
        let slot1 = try XCTUnwrap(log.outcome(of: w1)?.grantedLockSlot)
        XCTAssertEqual(c.lock(slot: slot1)?.owner, "w1")
        XCTAssertEqual(c.lock(key: "k")?.owner, "w1")
        XCTAssertEqual(c.waiterCount(forLock: "k"), 2)

        // Expiry hands it on too, at the instant.
        clock.advance(ms: 4_999)
        c.expireDue()
        XCTAssertEqual(c.lock(key: "k")?.owner, "w1")
        clock.advance(ms: 1)
        c.expireDue()
        XCTAssertEqual(log.ids, [w1, w2])
        XCTAssertEqual(c.lock(key: "k")?.owner, "w2")
        XCTAssertEqual(c.lock(key: "k")?.expiresAtMs, clock.wallMs + 5_000)
        XCTAssertEqual(c.waiterCount(forLock: "k"), 1)

        try c.releaseLock(key: "k", lease: c.lock(key: "k")!.leaseId)
        XCTAssertEqual(log.ids, [w1, w2, w3])
        XCTAssertEqual(c.lock(key: "k")?.owner, "w3")
        XCTAssertEqual(c.waiterCount(forLock: "k"), 0)
        XCTAssertNil(c.lockWaiters["k"])
        XCTAssertEqual(c.counters.acquiredResourceLocks, 4)
    }

    func testWaiterCountSkipsTimedOutAndDisconnectedWaiters() throws {
        let (c, clock) = makeCoordinator()
        let log = ParkedAnswers(c)
        let holder = c.lock(slot: try c.acquireLock(LockRequest(key: "k", owner: "holder", ttlSecs: 60))!)!
        let short = try c.mustParkLock(LockRequest(key: "k", owner: "short"), connection: 1, waitMs: 1_000)
        let closed = try c.mustParkLock(LockRequest(key: "k", owner: "closed"), connection: 2)
        let last = try c.mustParkLock(LockRequest(key: "k", owner: "last"), connection: 3)
        XCTAssertEqual(c.waiterCount(forLock: "k"), 3)
        clock.advance(ms: 1_000)
        c.expireDue()
        XCTAssertEqual(log.outcome(of: short)?.isNothing, true, "timed out: null")
        XCTAssertEqual(c.waiterCount(forLock: "k"), 2)
        c.connectionClosed(2)
        XCTAssertEqual(c.waiterCount(forLock: "k"), 1)
        XCTAssertEqual(log.count(of: closed), 0)
        try c.releaseLock(key: "k", lease: holder.leaseId)
        XCTAssertEqual(log.ids, [short, last], "the dead entries are skipped")
        XCTAssertEqual(c.lock(key: "k")?.owner, "last")
        XCTAssertEqual(c.waiterCount(forLock: "k"), 0)
    }

    func testReleaseWithOnlyDeadWaitersFreesTheKey() throws {
        let (c, clock) = makeCoordinator()
        let holder = c.lock(slot: try c.acquireLock(LockRequest(key: "k", ttlSecs: 60))!)!
        _ = try c.mustParkLock(LockRequest(key: "k"), connection: 1, waitMs: 100)
        clock.advance(ms: 100)
        c.expireDue()
        try c.releaseLock(key: "k", lease: holder.leaseId)
        XCTAssertNil(c.lock(key: "k"))
        XCTAssertEqual(c.lockCount, 0)
        XCTAssertEqual(c.deadlines.count, 0)
    }

    func testFencingTokensRiseStrictlyAcrossKeysAndMarkTheCounter() throws {
        let (c, _) = makeCoordinator()
        let log = ParkedAnswers(c)
        let a = c.lock(slot: try c.acquireLock(LockRequest(key: "a", ttlSecs: 60))!)!
        XCTAssertTrue(c.changes.fencingReservationMoved, "the first grant reserves a block")
        XCTAssertEqual(c.fencingReserved, Coordinator.fencingReservationBlock)
        c.changes.removeAll()
        let b = c.lock(slot: try c.acquireLock(LockRequest(key: "b", ttlSecs: 60))!)!
        XCTAssertFalse(c.changes.fencingReservationMoved, "inside the block nothing is written")
        let w = try c.mustParkLock(LockRequest(key: "a", ttlSecs: 60), connection: 1)
        try c.releaseLock(key: "a", lease: a.leaseId)
        let handedOn = c.lock(slot: try XCTUnwrap(log.outcome(of: w)?.grantedLockSlot))!
        try c.releaseLock(key: "b", lease: b.leaseId)
        let again = c.lock(slot: try c.acquireLock(LockRequest(key: "b", ttlSecs: 60))!)!
        let tokens = [a.fencingToken, b.fencingToken, handedOn.fencingToken, again.fencingToken]
        XCTAssertEqual(tokens, [1, 2, 3, 4])
        XCTAssertEqual(c.fencingCounter, 4)
    }

    func testRefusedAcquireDoesNotMoveTheFencingCounter() throws {
        let (c, _) = makeCoordinator()
        _ = try c.acquireLock(LockRequest(key: "a", ttlSecs: 60))
        c.changes.removeAll()
        XCTAssertEqual(try c.acquireLock(LockRequest(key: "a"), connection: 1, waitMs: 0), .held)
        _ = try c.mustParkLock(LockRequest(key: "a"), connection: 1)
        XCTAssertFalse(c.changes.fencingReservationMoved)
        XCTAssertEqual(c.fencingCounter, 1)
    }

    func testTheReservationMovesWhenABlockIsUsedUp() throws {
        let (c, _) = makeCoordinator()
        for _ in 0..<Coordinator.fencingReservationBlock {
            let lock = c.lock(slot: try c.acquireLock(LockRequest(key: "k"))!)!
            try c.releaseLock(key: "k", lease: lock.leaseId)
        }
        c.changes.removeAll()
        XCTAssertEqual(c.fencingCounter, c.fencingReserved)
        let next = c.lock(slot: try c.acquireLock(LockRequest(key: "k"))!)!
        XCTAssertEqual(next.fencingToken, Coordinator.fencingReservationBlock + 1)
        XCTAssertTrue(c.changes.fencingReservationMoved)
        XCTAssertEqual(c.fencingReserved, 2 * Coordinator.fencingReservationBlock)
    }
}
