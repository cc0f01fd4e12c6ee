import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

/// Whole-second deadlines, node names and parked acquirers of a task that stops being ACTIVE,
/// on a hand-moved clock.
final class CoordinatorWireTests: XCTestCase {

    func testWholeSecondRounding() {
        XCTAssertEqual(Coordinator.wholeSecond(atOrAfter: 5_000), 5_000)
        XCTAssertEqual(Coordinator.wholeSecond(atOrAfter: 5_001), 6_000)
        XCTAssertEqual(Coordinator.wholeSecond(atOrAfter: 5_999), 6_000)
    }

    /// A lock taken at .850 with a 1 s TTL ends at the second after next, exactly there.
    func testLockDeadlineIsTheFirstWholeSecondAtOrAfterTheTTL() throws {
        let (c, clock) = makeCoordinator()
        clock.advance(ms: 850)   // ManualClock starts on a whole second
        let start = clock.wallMs
        let slot = try XCTUnwrap(try c.acquireLock(LockRequest(key: "k", ttlSecs: 1)))
        let lock = try XCTUnwrap(c.lock(slot: slot))
        XCTAssertEqual(lock.expiresAtMs, start - 850 + 2_000)
        XCTAssertEqual(c.nextDeadlineMs, lock.expiresAtMs, "the timer is armed for the reported second")

        clock.advance(ms: 2_000 - 850 - 1)
        c.expireDue()
        XCTAssertNotNil(c.lock(key: "k"), "held until the reported second")
        XCTAssertNil(try c.acquireLock(LockRequest(key: "k", owner: "other")))
        clock.advance(ms: 1)
        c.expireDue()
        XCTAssertNil(c.lock(key: "k"), "free at the reported second")
        XCTAssertNotNil(try c.acquireLock(LockRequest(key: "k", owner: "other")))

        // A heartbeat rounds up the same way.
        clock.advance(ms: 300)
        try c.heartbeatLock(key: "k", lease: c.lock(key: "k")!.leaseId, ttlSecs: 4)
        XCTAssertEqual(c.lock(key: "k")!.expiresAtMs, start - 850 + 2_000 + 5_000)
    }

    func testNodeLeaseDeadlineIsAWholeSecondOnAcquireHeartbeatAndRestore() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 10)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(uuid(1))])
        let base = clock.wallMs
        clock.advance(ms: 999)
        let (n, lease) = try c.mustAcquire(t)
        XCTAssertEqual(try c.nodeRecord(t, n).lease?.expiresAtMs, base + 11_000)
        clock.advance(ms: 2)   // base + 1.001 s
        try c.heartbeatNode(task: t, node: n, lease: lease, leaseTTLSecs: 3)
        XCTAssertEqual(try c.nodeRecord(t, n).lease?.expiresAtMs, base + 5_000)
        clock.advance(ms: 5_000 - 1_001 - 1)
        c.expireDue()
        XCTAssertEqual(try c.status(t, n), .running)
        clock.advance(ms: 1)
        c.expireDue()
        XCTAssertEqual(try c.status(t, n), .pending, "expired exactly at the reported second")

        // A row from before whole-second deadlines is rounded up when it is loaded.
        let (restored, _) = makeCoordinator()
        let task = restored.restoreTask(id: uuid(9), goal: "g", context: bytes("{}"), createdAtMs: base, cancelled: false)
        let old = Lease(id: uuid(10), owner: "o", acquiredAtSecs: base / 1000, expiresAtMs: base + 60_123, deadline: .none)
        var dependencies: [[UUID128]] = []
        restored.restoreNode(RestoredNode(id: uuid(11), status: .running, dependencies: [], payloadSchema: bytes("{}"),
                                        result: nil, lease: old, updatedAtSecs: base / 1000, attempts: 1, maxAttempts: 0),
                             in: task, pendingDependencies: &dependencies)
        restored.resolveRestoredDependencies(of: task, dependencies)
        XCTAssertEqual(task.nodes[0].lease?.expiresAtMs, base + 61_000)
        XCTAssertEqual(restored.nextDeadlineMs, base + 61_000)
        restored.restoreLock(ResourceLock(key: "l", leaseId: uuid(12), owner: "o", provider: nil, taskId: nil, nodeId: nil,
                                          metadata: bytes("{}"), acquiredAtSecs: base / 1000, expiresAtMs: base + 500,
                                          updatedAtSecs: base / 1000, deadline: .none))
        XCTAssertEqual(restored.lock(key: "l")?.expiresAtMs, base + 1_000)
    }

    func testNodeNamesAreUniqueWithinATask() throws {
        let (c, _) = makeCoordinator()
        var named = node(uuid(1))
        named.name = "fetch"
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [named, node(uuid(2))])
        XCTAssertEqual(try c.nodeRecord(t, uuid(1)).name, "fetch")
        XCTAssertNil(try c.nodeRecord(t, uuid(2)).name)
        var again = node(uuid(3))
        again.name = "fetch"
        XCTAssertRefused(try c.addNodes(task: t, nodes: [again]), reason: .invalidDAG, "invalid state: duplicate node name: fetch")
        XCTAssertEqual(try c.task(t).nodes.count, 2, "nothing added")
        _ = try c.registerTask(goal: "other", context: bytes("{}"), nodes: [again])   // another task: fine
    }

    /// Parked acquirers get null as soon as their task completes or fails (not at wait_ms).
    func testParkedAcquirersEndWhenTheTaskStopsBeingActive() throws {
        let (c, _) = makeCoordinator()
        let resolutions = ParkedAnswers(c)
        let done = try c.registerTask(goal: "done", context: bytes("{}"), nodes: [node(uuid(1))])
        let (n1, l1) = try c.mustAcquire(done)
        let w1 = try c.mustPark(done)
        _ = try c.completeNode(task: done, node: n1, lease: l1, result: bytes("1"))
        XCTAssertEqual(resolutions.outcome(of: w1)?.isNothing, true, "COMPLETED")
        XCTAssertTrue(c.waiters.isEmpty)

        let failing = try c.registerTask(goal: "fails", context: bytes("{}"), nodes: [node(uuid(2)), node(uuid(3), [uuid(2)])])
        let (n2, l2) = try c.mustAcquire(failing)
        let w2 = try c.mustPark(failing)
        _ = try c.failNode(task: failing, node: n2, lease: l2, error: bytes("\"x\""))
        XCTAssertEqual(resolutions.outcome(of: w2)?.isNothing, true, "FAILED")

        // One lease expiring on its last attempt fails the task the same way.
        var last = node(uuid(4))
        last.maxAttempts = 1
        let expiring = try c.registerTask(goal: "expires", context: bytes("{}"), nodes: [last])
        _ = try c.acquireNextNode(task: expiring, owner: "w", leaseTTLSecs: 1)
        let w3 = try c.mustPark(expiring)
        try c.clock.asManual.advance(ms: 1_000)
        c.expireDue()
        XCTAssertEqual(resolutions.outcome(of: w3)?.isNothing, true, "FAILED by expiry")

        // Still ACTIVE: a waiter stays parked when a sibling completes but more work remains.
        let going = try c.registerTask(goal: "going", context: bytes("{}"), nodes: [node(uuid(5)), node(uuid(6)), node(uuid(7), [uuid(5)])])
        let (n5, l5) = try c.mustAcquire(going)
        _ = try c.mustAcquire(going)
        let w4 = try c.mustPark(going)
        XCTAssertEqual(resolutions.count(of: w4), 0)
        _ = try c.completeNode(task: going, node: n5, lease: l5, result: bytes("1"))
        XCTAssertEqual(resolutions.outcome(of: w4)?.acquiredRef.map { c.nodeId($0) }, uuid(7), "served, not ended")
    }
}

private extension Clock {
    var asManual: ManualClock {
        get throws {
            guard let manual = self as? ManualClock else { throw ITError("not a ManualClock") }
            return manual
        }
    }
}
