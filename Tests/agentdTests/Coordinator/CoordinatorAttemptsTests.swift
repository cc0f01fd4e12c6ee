import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

/// Max_attempts, LEASE_EXPIRED, BLOCKED nodes, RetryNode and FailNode.
final class CoordinatorAttemptsTests: XCTestCase {
    func testTwoExpiriesExhaustTwoAttempts() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 10)
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a, maxAttempts: 2)])
        let (_, l1) = try c.mustAcquire(t, owner: "one")
        XCTAssertEqual(try c.nodeRecord(t, a).attempts, 1)
        clock.advance(ms: 10_000)
        c.expireDue()
        XCTAssertEqual(try c.status(t, a), .pending, "one attempt left")
        XCTAssertNil(try c.nodeRecord(t, a).result)

        let (_, l2) = try c.mustAcquire(t, owner: "two")
        XCTAssertEqual(try c.nodeRecord(t, a).attempts, 2)
        clock.advance(ms: 10_000)
        c.expireDue()
        let record = try c.nodeRecord(t, a)
        XCTAssertEqual(record.status, .failed)
        XCTAssertNil(record.lease)
        XCTAssertEqual(payloadText(record.result), "{\"error\":\"attempts exhausted\",\"attempts\":2}")
        XCTAssertEqual(c.counters.failedNodes, 1)
        XCTAssertEqual(c.counters.timeoutRollbacks, 2)
        XCTAssertEqual(c.deadlines.count, 0)
        XCTAssertEqual(try c.task(t).status, .failed)
        XCTAssertEqual(try c.acquireNextNode(task: t, owner: "w", waitMs: 0), .nothing)

        let events = try c.task(t).events
        XCTAssertEqual(events.map(\.actionType), ["LEASE_EXPIRED", "LEASE_EXPIRED"])
        XCTAssertEqual(events.map(\.seq), [1, 2])
        XCTAssertEqual(payloadText(events[0].payload),
                       "{\"lease_id\":\"\(l1.string)\",\"lease_owner\":\"one\",\"attempt\":1,\"reason\":\"timeout\"}")
        XCTAssertEqual(payloadText(events[1].payload),
                       "{\"lease_id\":\"\(l2.string)\",\"lease_owner\":\"two\",\"attempt\":2,\"reason\":\"timeout\"}")
        XCTAssertEqual(events[1].timestampMs, clock.wallMs)
        XCTAssertEqual(record.events, [0, 1])
    }

    func testUnlimitedAttemptsNeverFail() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 1)
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        for _ in 0..<5 {
            _ = try c.mustAcquire(t)
            clock.advance(ms: 1_000)
            c.expireDue()
        }
        XCTAssertEqual(try c.status(t, a), .pending)
        XCTAssertEqual(try c.nodeRecord(t, a).attempts, 5)
    }

    func testExhaustedNodeBlocksItsDependentsTransitively() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 10)
        let a = uuid(1), b = uuid(2), d = uuid(3), free = uuid(4)
        let t = try c.registerTask(goal: "g", context: bytes("{}"),
                                   nodes: [node(a, maxAttempts: 1), node(b, [a]), node(d, [b]), node(free)])
        _ = try c.mustAcquire(t)
        clock.advance(ms: 10_000)
        c.expireDue()
        let record = try c.task(t)
        XCTAssertEqual(try c.status(t, a), .failed)
        XCTAssertEqual(record.blockedCount, 2)
        XCTAssertTrue(try c.nodeRecord(t, b).isBlocked)
        XCTAssertTrue(try c.nodeRecord(t, d).isBlocked, "blocked through b")
        XCTAssertEqual(try c.status(t, b), .pending, "BLOCKED nodes stay PENDING")
        XCTAssertFalse(try c.nodeRecord(t, free).isBlocked)
        XCTAssertEqual(record.counts, [3, 0, 0, 1])
        XCTAssertEqual(record.status, .active, "free can still run")

        let (_, lf) = try c.mustAcquire(t)
        XCTAssertEqual(record.status, .active, "free is running")
        _ = try c.completeNode(task: t, node: free, lease: lf, result: bytes("1"))
        XCTAssertEqual(record.status, .failed, "nothing else can run")
        XCTAssertEqual(try c.listTasks(status: .failed, limit: 10, after: nil).map(\.id), [t])
        XCTAssertEqual(try c.listTasks(status: .active, limit: 10, after: nil).count, 0)
    }

    func testRetryNodeUnblocksDependentsAndReactivatesTheTask() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 10)
        let a = uuid(1), b = uuid(2), d = uuid(3), j = uuid(4)
        // A diamond below a: b and d depend on a, j on both.
        let t = try c.registerTask(goal: "g", context: bytes("{}"),
                                   nodes: [node(a, maxAttempts: 1), node(b, [a]), node(d, [a]), node(j, [b, d])])
        _ = try c.mustAcquire(t)
        clock.advance(ms: 10_000)
        c.expireDue()
        let record = try c.task(t)
        XCTAssertEqual(record.status, .failed)
        XCTAssertEqual(record.blockedCount, 3)
        XCTAssertEqual(try c.nodeRecord(t, j).blockedDependencies, 2)

        try c.retryNode(task: t, node: a)
        let retried = try c.nodeRecord(t, a)
        XCTAssertEqual(retried.status, .pending)
        XCTAssertEqual(retried.attempts, 0)
        XCTAssertNil(retried.result)
        XCTAssertEqual(record.blockedCount, 0)
        for id in [b, d, j] {
            XCTAssertFalse(try c.nodeRecord(t, id).isBlocked)
            XCTAssertEqual(try c.nodeRecord(t, id).blockedDependencies, 0)
        }
        XCTAssertEqual(record.status, .active)
        XCTAssertEqual(try c.listTasks(status: .active, limit: 10, after: nil).map(\.id), [t])
        XCTAssertEqual(try c.listTasks(status: .failed, limit: 10, after: nil).count, 0)

        // And it runs again, with max_attempts counting afresh.
        let (n, l) = try c.mustAcquire(t)
        XCTAssertEqual(n, a)
        XCTAssertEqual(try c.nodeRecord(t, a).attempts, 1)
        _ = try c.completeNode(task: t, node: a, lease: l, result: bytes("1"))
        XCTAssertEqual(try c.mustAcquire(t).0, b)
        XCTAssertEqual(try c.mustAcquire(t).0, d)
    }

    func testRetryIsRefusedUnlessFailed() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        XCTAssertRefused(try c.retryNode(task: t, node: a), reason: .nodeNotRunning,
                         "invalid state: node \(a.string) cannot transition from PENDING to PENDING")
        let (_, l) = try c.mustAcquire(t)
        XCTAssertRefused(try c.retryNode(task: t, node: a), reason: .nodeNotRunning,
                         "invalid state: node \(a.string) cannot transition from RUNNING to PENDING")
        _ = try c.completeNode(task: t, node: a, lease: l, result: bytes("1"))
        XCTAssertRefused(try c.retryNode(task: t, node: a), reason: .nodeNotRunning,
                         "invalid state: node \(a.string) cannot transition from COMPLETED to PENDING")
        XCTAssertRefused(try c.retryNode(task: t, node: uuid(9)), reason: .nodeNotFound)
    }

    func testFailNodeAlwaysFailsWhateverAttemptsRemain() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1), b = uuid(2)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a, maxAttempts: 5), node(b, [a])])
        let (_, l) = try c.mustAcquire(t)
        _ = try c.failNode(task: t, node: a, lease: l, error: bytes("{\"why\":1}"))
        XCTAssertEqual(try c.status(t, a), .failed)
        XCTAssertEqual(payloadText(try c.nodeRecord(t, a).result), "{\"why\":1}")
        XCTAssertTrue(try c.nodeRecord(t, b).isBlocked)
        XCTAssertEqual(try c.task(t).status, .failed)
        XCTAssertEqual(try c.task(t).events.last?.actionType, "FAIL_NODE")
        XCTAssertEqual(c.deadlines.count, 0)
    }
}

/// Release_on_disconnect for node leases and locks.
final class CoordinatorDisconnectTests: XCTestCase {
    func testClosingTheConnectionExpiresABoundLease() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        guard case .node = try c.acquireNextNode(task: t, owner: "w", releaseOnDisconnect: true, connection: 7) else {
            return XCTFail("a is runnable")
        }
        let lease = try XCTUnwrap(try c.nodeRecord(t, a).lease)
        XCTAssertEqual(lease.boundConnection, 7)
        c.connectionClosed(8)
        XCTAssertEqual(try c.status(t, a), .running, "another connection")
        c.connectionClosed(7)
        XCTAssertEqual(try c.status(t, a), .pending)
        XCTAssertNil(try c.nodeRecord(t, a).lease)
        XCTAssertEqual(c.deadlines.count, 0)
        XCTAssertEqual(c.counters.timeoutRollbacks, 1)
        let event = try XCTUnwrap(try c.task(t).events.last)
        XCTAssertEqual(event.actionType, "LEASE_EXPIRED")
        XCTAssertEqual(payloadText(event.payload),
                       "{\"lease_id\":\"\(lease.id.string)\",\"lease_owner\":\"w\",\"attempt\":1,\"reason\":\"disconnect\"}")
        XCTAssertNil(c.bindingsByConnection[7])
        XCTAssertEqual(try c.mustAcquire(t).0, a)
    }

    func testUnboundLeaseSurvivesItsConnection() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        _ = try c.acquireNextNode(task: t, owner: "w", releaseOnDisconnect: false, connection: 7)
        c.connectionClosed(7)
        XCTAssertEqual(try c.status(t, a), .running)
        XCTAssertEqual(try c.nodeRecord(t, a).lease?.boundConnection, 0)
    }

    func testDisconnectCountsAsAnAttempt() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a, maxAttempts: 1)])
        _ = try c.acquireNextNode(task: t, owner: "w", releaseOnDisconnect: true, connection: 7)
        c.connectionClosed(7)
        XCTAssertEqual(try c.status(t, a), .failed)
        XCTAssertEqual(payloadText(try c.nodeRecord(t, a).result), "{\"error\":\"attempts exhausted\",\"attempts\":1}")
    }

    func testCompletedNodeIsUntouchedByTheClose() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        _ = try c.acquireNextNode(task: t, owner: "w", releaseOnDisconnect: true, connection: 7)
        let lease = try XCTUnwrap(try c.nodeRecord(t, a).lease)
        _ = try c.completeNode(task: t, node: a, lease: lease.id, result: bytes("1"))
        c.connectionClosed(7)
        XCTAssertEqual(try c.status(t, a), .completed)
        XCTAssertEqual(try c.task(t).events.map(\.actionType), ["COMPLETE_NODE"])
        XCTAssertEqual(c.counters.timeoutRollbacks, 0)
    }

    func testCloseDoesNotTouchALeaseTakenAgainByAnotherConnection() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 10)
        let a = uuid(1)
        let t = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        _ = try c.acquireNextNode(task: t, owner: "first", releaseOnDisconnect: true, connection: 7)
        clock.advance(ms: 10_000)
        c.expireDue()
        _ = try c.acquireNextNode(task: t, owner: "second", releaseOnDisconnect: true, connection: 8)
        c.connectionClosed(7)
        XCTAssertEqual(try c.status(t, a), .running)
        XCTAssertEqual(try c.nodeRecord(t, a).lease?.owner, "second")
        XCTAssertEqual(try c.task(t).events.count, 1, "only the timeout")
    }

    func testClosingTheConnectionReleasesABoundLockToAWaiterOnAnotherConnection() throws {
        let (c, _) = makeCoordinator()
        let log = ParkedAnswers(c)
        guard case let .granted(slot) = try c.acquireLock(LockRequest(key: "k", owner: "a", ttlSecs: 60, boundConnection: 7),
                                                          connection: 7) else {
            return XCTFail("free key")
        }
        XCTAssertEqual(c.lock(slot: slot)?.boundConnection, 7)
        let w = try c.mustParkLock(LockRequest(key: "k", owner: "b", ttlSecs: 60, boundConnection: 8), connection: 8)
        c.connectionClosed(7)
        XCTAssertEqual(log.ids, [w])
        let granted = try XCTUnwrap(c.lock(slot: try XCTUnwrap(log.outcome(of: w)?.grantedLockSlot)))
        XCTAssertEqual(granted.owner, "b")
        XCTAssertEqual(granted.boundConnection, 8)
        XCTAssertEqual(c.counters.releasedResourceLocks, 1)
        XCTAssertEqual(c.changes.dirtyLocks[LockKey("k")], false, "taken and handed on in one turn")
        c.connectionClosed(8)
        XCTAssertNil(c.lock(key: "k"))
        XCTAssertEqual(c.deadlines.count, 0)
    }

    func testReleasedLockIsNotReleasedAgainByTheClose() throws {
        let (c, _) = makeCoordinator()
        let mine = c.lock(slot: try c.acquireLock(LockRequest(key: "k", owner: "a", boundConnection: 7))!)!
        try c.releaseLock(key: "k", lease: mine.leaseId)
        _ = try c.acquireLock(LockRequest(key: "k", owner: "b", boundConnection: 8), connection: 8, waitMs: 0)
        c.connectionClosed(7)
        XCTAssertEqual(c.lock(key: "k")?.owner, "b")
        XCTAssertEqual(c.counters.releasedResourceLocks, 1)
    }
}
