import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

final class CoordinatorLockTests: XCTestCase {
    func testLocksAreExclusiveEvenForTheSameOwner() throws {
        let (c, _) = makeCoordinator()
        let slot = try c.acquireLock(LockRequest(key: "file:a", owner: "me", ttlSecs: 30))
        XCTAssertNotNil(slot)
        XCTAssertNil(try c.acquireLock(LockRequest(key: "file:a", owner: "me", ttlSecs: 30)))
        XCTAssertNil(try c.acquireLock(LockRequest(key: "file:a", owner: "other", ttlSecs: 30)))
        XCTAssertNotNil(try c.acquireLock(LockRequest(key: "file:b", owner: "other", ttlSecs: 30)))
        XCTAssertEqual(c.locksSortedByKey().map(\.key), ["file:a", "file:b"])
    }

    func testExpiredLockIsTakenOverAndItsOldLeaseIsStale() throws {
        let (c, clock) = makeCoordinator()
        let first = c.lock(slot: try c.acquireLock(LockRequest(key: "k", owner: "a", ttlSecs: 5))!)!
        clock.advance(ms: 4_999)
        XCTAssertNil(try c.acquireLock(LockRequest(key: "k", owner: "b", ttlSecs: 5)))
        clock.advance(ms: 1)
        let second = c.lock(slot: try c.acquireLock(LockRequest(key: "k", owner: "b", ttlSecs: 5))!)!
        XCTAssertEqual(second.owner, "b")
        XCTAssertNotEqual(first.leaseId, second.leaseId)
        XCTAssertRefused(try c.heartbeatLock(key: "k", lease: first.leaseId, ttlSecs: nil),
                         "invalid state: resource lock k requires the current active lease")
        XCTAssertRefused(try c.releaseLock(key: "k", lease: first.leaseId),
                         "invalid state: resource lock k requires the current lease")
        try c.releaseLock(key: "k", lease: second.leaseId)
        XCTAssertEqual(c.lockCount, 0)
    }

    func testHeartbeatExtendsAndDefaultTTLIsTheNodeTimeout() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 0)
        let lock = c.lock(slot: try c.acquireLock(LockRequest(key: "k"))!)!
        XCTAssertEqual(lock.expiresAtMs, clock.wallMs + 1_000, "at least one second")
        try c.heartbeatLock(key: "k", lease: lock.leaseId, ttlSecs: 60)
        clock.advance(ms: 59_999)
        c.expireDue()
        XCTAssertEqual(c.lockCount, 1)
        clock.advance(ms: 1)
        c.expireDue()
        XCTAssertEqual(c.lockCount, 0)
    }

    func testLockOnUnknownTaskIsRefused() throws {
        let (c, _) = makeCoordinator()
        XCTAssertRefused(try c.acquireLock(LockRequest(key: "k", taskId: uuid(9))), "task not found: \(uuid(9).string)")
    }

    func testTakeAndReleaseInOneTurnNeedsNoRow() throws {
        let (c, _) = makeCoordinator()
        let lock = c.lock(slot: try c.acquireLock(LockRequest(key: "k"))!)!
        try c.releaseLock(key: "k", lease: lock.leaseId)
        XCTAssertEqual(c.changes.dirtyLocks[LockKey("k")], false, "no row existed before the turn")
        XCTAssertNil(c.lock(key: "k"))
    }
}
