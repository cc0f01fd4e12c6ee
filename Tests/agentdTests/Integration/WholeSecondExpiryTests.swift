// Deadlines are the whole second that answers report: a client of the original treats a lock
// or lease as free from `lease_expires_at` on. Each test takes its lock or lease late in a
// second (past .800), where a deadline kept to the millisecond and reported by its floor
// would still be held for most of a second after the reported one: the old behaviour fails
// these tests every time.

import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class WholeSecondExpiryTests: FeatureTestCase {

    /// Blocks (bounded) until the wall clock is past .800 of a second.
    private func waitUntilLateInASecond() throws {
        try waitUntil("the wall clock is late in a second", timeout: 3) {
            let fraction = self.unixNow().truncatingRemainder(dividingBy: 1)
            return fraction > 0.8 && fraction < 0.95
        }
    }

    /// Blocks (bounded) until the wall clock reaches Unix second `second`.
    private func waitUntilSecond(_ second: Int) throws {
        try waitUntil("the wall clock reaches \(second)", timeout: 5) { self.unixNow() >= Double(second) }
    }

    /// A 1 s lock taken at X.8xx reports X+2 (the first whole second at or after now + 1 s);
    /// a second client that retries exactly at X+2 gets it, and the holder's lease is stale.
    func testLockIsFreeAtTheReportedSecond() throws {
        let daemon = try makeDaemon()
        let holder = try connect(daemon)
        let other = try connect(daemon)
        try waitUntilLateInASecond()
        let before = unixNow()
        let lock = try holder.call("AcquireResourceLock", ["resource_key": "file:x", "owner": "h", "ttl_secs": 1])
        let reported = try XCTUnwrap(lock["lease_expires_at"].int, "\(lock)")
        XCTAssertGreaterThanOrEqual(Double(reported), before + 1, "a holder never gets less than its TTL")
        XCTAssertEqual(reported, Int(before.rounded(.down)) + 2, "the first whole second at or after now + 1 s")

        XCTAssertTrue(try other.call("AcquireResourceLock", ["resource_key": "file:x", "owner": "o"]).isNull,
                      "held before the reported second")
        try waitUntilSecond(reported)
        let taken = try other.call("AcquireResourceLock", ["resource_key": "file:x", "owner": "o", "ttl_secs": 30])
        XCTAssertEqual(taken["owner"].string, "o", "free from the reported second on: \(taken)")
        try expectReason(holder, "ReleaseResourceLock", ["resource_key": "file:x", "lease_id": lock["lease_id"].string!],
                         reason: "LOCK_NOT_HELD")
    }

    /// A heartbeat late in a second moves the deadline to a whole second too.
    func testLockHeartbeatDeadlineIsTheReportedSecond() throws {
        let daemon = try makeDaemon()
        let holder = try connect(daemon)
        let other = try connect(daemon)
        let lock = try holder.call("AcquireResourceLock", ["resource_key": "hb", "owner": "h", "ttl_secs": 30])
        try waitUntilLateInASecond()
        let before = unixNow()
        _ = try holder.call("HeartbeatResourceLock", ["resource_key": "hb", "lease_id": lock["lease_id"].string!, "ttl_secs": 1])
        let listed = try XCTUnwrap(try holder.call("ListResourceLocks")["locks"].array?.first)
        let reported = try XCTUnwrap(listed["lease_expires_at"].int)
        XCTAssertEqual(reported, Int(before.rounded(.down)) + 2)
        try waitUntilSecond(reported)
        XCTAssertEqual(try other.call("AcquireResourceLock", ["resource_key": "hb", "owner": "o"])["owner"].string, "o")
    }

    /// A node lease of 1 s taken late in a second: another agent acquiring at the reported
    /// second gets the node.
    func testNodeLeaseIsFreeAtTheReportedSecond() throws {
        let daemon = try makeDaemon()
        let first = try connect(daemon)
        let second = try connect(daemon)
        let n = itUUID()
        let taskID = try registerTask(first, nodes: [nodeDef(n)])
        try waitUntilLateInASecond()
        let before = unixNow()
        let held = try first.call("AcquireNextNode", ["task_id": taskID, "lease_owner": "a", "lease_ttl_secs": 1])
        let reported = try XCTUnwrap(held["lease_expires_at"].int, "\(held)")
        XCTAssertEqual(reported, Int(before.rounded(.down)) + 2)
        XCTAssertEqual(held["context"]["node"]["lease_expires_at"].int, reported)
        XCTAssertTrue(try second.call("AcquireNextNode", ["task_id": taskID, "lease_owner": "b"]).isNull)
        try waitUntilSecond(reported)
        let again = try second.call("AcquireNextNode", ["task_id": taskID, "lease_owner": "b"])
        XCTAssertEqual(again["node_id"].string, n, "the lease ended at the reported second: \(again)")
        XCTAssertEqual(again["lease_owner"].string, "b")
    }

    /// Expiry is timer-driven: with nobody asking, a parked waiter is granted the lock at the
    /// reported second, not before it.
    func testParkedWaiterIsGrantedAtTheReportedSecond() throws {
        let daemon = try makeDaemon()
        let holder = try connect(daemon)
        let waiter = try connect(daemon)
        try waitUntilLateInASecond()
        let lock = try holder.call("AcquireResourceLock", ["resource_key": "w", "owner": "h", "ttl_secs": 1])
        let reported = try XCTUnwrap(lock["lease_expires_at"].int)
        let id = try post(waiter, "AcquireResourceLock", ["resource_key": "w", "owner": "w", "wait_ms": 10_000])
        let granted = try answer(waiter, id: id, timeout: 8)
        let arrived = unixNow()
        XCTAssertEqual(granted["owner"].string, "w", "\(granted)")
        XCTAssertGreaterThanOrEqual(arrived, Double(reported), "not granted before the reported second")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(granted["acquired_at"].int), reported)
    }
}
