// Over the socket: lock waiters (FIFO, granted on release and on expiry, null on
// timeout), fencing tokens across keys and restarts, ListResourceLocks prefix.

import XCTest
import Foundation
import AgentdClient

final class LockWaitingTests: FeatureTestCase {

    /// The listed waiters count of `key` (0 when the key is not listed).
    private func waiters(_ client: AgentdConnection, _ key: String) throws -> Int {
        guard let listed = try listedLock(client, key) else { return 0 }
        return listed["waiters"]?.int ?? -1
    }

    /// A holds k; B then C wait; A releases -> B; B releases -> C. A 200 ms waiter gets
    /// null. A waiter whose connection closes leaves the queue.
    func testLockWaitersAreServedFIFO() throws {
        let daemon = try makeDaemon()
        let a = try openConnection(daemon)
        let b = try openConnection(daemon)
        let c = try openConnection(daemon)
        let observer = try openConnection(daemon)

        // wait_ms on a free key is granted at once.
        let lockA = try lock(a, "k", owner: "A", ttl: 30, extra: ["wait_ms": 10_000])
        let tokenA = try XCTUnwrap(lockA["fencing_token"]?.int, "fencing_token in \(lockA)")
        XCTAssertEqual(lockA["waiters"]?.int, 0, "a fresh grant has no waiters: \(lockA)")

        let waitB = post(b, "AcquireResourceLock", ["resource_key": "k", "owner": "B", "ttl_secs": 30, "wait_ms": 10_000])
        try waitUntil("B is parked on k", timeout: 5) { try self.waiters(observer, "k") == 1 }
        let waitC = post(c, "AcquireResourceLock", ["resource_key": "k", "owner": "C", "ttl_secs": 30, "wait_ms": 10_000])
        try waitUntil("C is parked on k", timeout: 5) { try self.waiters(observer, "k") == 2 }
        let listed = try XCTUnwrap(try listedLock(observer, "k"))
        XCTAssertEqual(listed["owner"]?.stringValue, "A")
        XCTAssertEqual(listed["waiters"]?.int, 2)
        XCTAssertEqual(listed["fencing_token"]?.int, tokenA)
        assertSilent(waitB, "B while A holds k")
        assertSilent(waitC, "C while A holds k")

        try release(a, lockA)
        let lockB = try answer(waitB, timeout: 5)
        XCTAssertEqual(lockB["resource_key"]?.stringValue, "k")
        XCTAssertEqual(lockB["owner"]?.stringValue, "B")
        XCTAssertNotEqual(lockB["lease_id"]?.stringValue, lockA["lease_id"]?.stringValue)
        let tokenB = try XCTUnwrap(lockB["fencing_token"]?.int, "\(lockB)")
        XCTAssertGreaterThan(tokenB, tokenA)
        assertHasKeys(lockB, IntegrationTestCase.lockKeys + ["fencing_token", "waiters"], "granted lock")
        assertSilent(waitC, "C while B holds k")
        XCTAssertEqual(try waiters(observer, "k"), 1)
        XCTAssertEqual(try listedLock(observer, "k")?["owner"]?.stringValue, "B")

        // A's old lease is stale now.
        expectReason(a, "ReleaseResourceLock", ["resource_key": "k", "lease_id": .string(lockA["lease_id"]!.stringValue!)],
                     reason: "LOCK_NOT_HELD", message: "invalid state: resource lock k requires the current lease")

        // A short waiter times out with null while B holds the lock, and leaves the queue.
        let short = try openConnection(daemon)
        let waitShort = post(short, "AcquireResourceLock", ["resource_key": "k", "owner": "S", "wait_ms": 200])
        let timedOut = try answer(waitShort, timeout: 5)
        XCTAssertTrue(timedOut.isNull, "timed-out lock waiter gets null: \(timedOut)")
        XCTAssertEqual(try waiters(observer, "k"), 1, "the timed-out waiter left the queue")

        try release(b, lockB)
        let lockC = try answer(waitC, timeout: 5)
        XCTAssertEqual(lockC["owner"]?.stringValue, "C")
        XCTAssertGreaterThan(try XCTUnwrap(lockC["fencing_token"]?.int), tokenB)
        let final = try XCTUnwrap(try listedLock(observer, "k"))
        XCTAssertEqual(final["owner"]?.stringValue, "C")
        XCTAssertEqual(final["waiters"]?.int, 0)
        XCTAssertEqual(final["lease_id"]?.stringValue, lockC["lease_id"]?.stringValue)
    }

    /// A parked lock waiter whose connection closes leaves the queue: it is no longer
    /// counted, and a release goes to the waiter behind it.
    func testClosedLockWaiterLeavesQueue() throws {
        let daemon = try makeDaemon()
        let holder = try openConnection(daemon)
        let quitter = try openConnection(daemon)
        let stayer = try openConnection(daemon)
        let observer = try openConnection(daemon)

        let held = try lock(holder, "q", owner: "H", ttl: 30)
        post(quitter, "AcquireResourceLock", ["resource_key": "q", "owner": "Q", "ttl_secs": 30, "wait_ms": 10_000])
        try waitUntil("Q is parked on q", timeout: 5) { try self.waiters(observer, "q") == 1 }
        let waitStay = post(stayer, "AcquireResourceLock", ["resource_key": "q", "owner": "S", "ttl_secs": 30, "wait_ms": 10_000])
        try waitUntil("S is parked on q", timeout: 5) { try self.waiters(observer, "q") == 2 }
        quitter.close()
        do {
            try waitUntil("Q left the queue", timeout: 3) { try self.waiters(observer, "q") == 1 }
        } catch {
            XCTFail("\(error)")
        }
        try release(holder, held)
        let granted = try answer(waitStay, timeout: 5)
        XCTAssertEqual(granted["owner"]?.stringValue, "S", "the lock goes to the live waiter: \(granted)")
        XCTAssertEqual(try listedLock(observer, "q")?["owner"]?.stringValue, "S")
    }

    /// A waiter is granted the lock when the holder's lock expires (ttl 1 s).
    func testLockWaiterGrantedOnExpiry() throws {
        let daemon = try makeDaemon()
        let holder = try openConnection(daemon)
        let waiter = try openConnection(daemon)
        let observer = try openConnection(daemon)

        let first = try lock(holder, "exp", owner: "H", ttl: 1)
        let tokenH = try XCTUnwrap(first["fencing_token"]?.int)
        let waiting = post(waiter, "AcquireResourceLock", ["resource_key": "exp", "owner": "W", "ttl_secs": 30, "wait_ms": 10_000])
        try waitUntil("W is parked on exp", timeout: 5) { try self.waiters(observer, "exp") == 1 }

        let granted = try answer(waiting, timeout: 8)
        XCTAssertEqual(granted["owner"]?.stringValue, "W")
        XCTAssertGreaterThan(try XCTUnwrap(granted["fencing_token"]?.int), tokenH)
        let listed = try XCTUnwrap(try listedLock(observer, "exp"))
        XCTAssertEqual(listed["owner"]?.stringValue, "W")
        XCTAssertEqual(listed["lease_id"]?.stringValue, granted["lease_id"]?.stringValue)
        XCTAssertEqual(listed["waiters"]?.int, 0)
        // The waiter's own ttl applies from the grant.
        if let acquired = listed["acquired_at"]?.int, let expires = listed["lease_expires_at"]?.int {
            // The first whole second at or after the grant + 30 s: 30 or 31 after acquired_at.
            XCTAssertTrue([30, 31].contains(expires - acquired), "\(listed)")
        } else {
            XCTFail("lock times are not integers: \(listed)")
        }
        expectReason(holder, "HeartbeatResourceLock", ["resource_key": "exp", "lease_id": .string(first["lease_id"]!.stringValue!)],
                     reason: "LOCK_NOT_HELD", message: "invalid state: resource lock exp requires the current active lease")
    }

    /// Tokens rise strictly across keys, re-grants, and a kill -9 plus restart on the same db.
    func testFencingTokensRiseAcrossKeysAndRestart() throws {
        let daemon = try makeDaemon()
        var client = try openConnection(daemon)
        var seen: [Int] = []

        let k1 = try lock(client, "k1", ttl: 30)
        let k2 = try lock(client, "k2", ttl: 30)
        seen.append(try XCTUnwrap(k1["fencing_token"]?.int, "\(k1)"))
        seen.append(try XCTUnwrap(k2["fencing_token"]?.int, "\(k2)"))
        // A held lock answers null and takes no token; a heartbeat keeps the token.
        XCTAssertTrue(try lock(client, "k1", ttl: 30).isNull)
        XCTAssertEqual(try client.call("HeartbeatResourceLock", ["resource_key": "k1", "lease_id": .string(k1["lease_id"]!.stringValue!),
                                                                 "ttl_secs": 60])["ok"]?.boolValue, true)
        XCTAssertEqual(try listedLock(client, "k1")?["fencing_token"]?.int, seen[0])
        try release(client, k1)
        let k1again = try lock(client, "k1", ttl: 30)
        seen.append(try XCTUnwrap(k1again["fencing_token"]?.int))
        try release(client, k1again)
        try release(client, k2)

        daemon.crash()
        try daemon.start()
        client = try openConnection(daemon)
        let k3 = try lock(client, "k3", ttl: 30)
        seen.append(try XCTUnwrap(k3["fencing_token"]?.int, "\(k3)"))
        let k1third = try lock(client, "k1", ttl: 30)
        seen.append(try XCTUnwrap(k1third["fencing_token"]?.int))

        for (earlier, later) in zip(seen, seen.dropFirst()) {
            XCTAssertLessThan(earlier, later, "fencing tokens must rise strictly: \(seen)")
        }

        // And once more with a lock still held over the crash: it keeps its token.
        daemon.crash()
        try daemon.start()
        client = try openConnection(daemon)
        XCTAssertEqual(try listedLock(client, "k3")?["fencing_token"]?.int, seen[3])
        let k4 = try lock(client, "k4", ttl: 30)
        XCTAssertGreaterThan(try XCTUnwrap(k4["fencing_token"]?.int), seen.last!)
    }

    /// ListResourceLocks {prefix}: only keys starting with it (a plain string prefix, no
    /// wildcards), sorted by key.
    func testListResourceLocksPrefix() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        for key in ["file:b", "net:x", "file:a", "file", "filez"] {
            XCTAssertFalse(try lock(client, key, ttl: 30).isNull, key)
        }
        func keys(_ prefix: String?) throws -> [String] {
            try listLocks(client, prefix: prefix).map { $0["resource_key"]?.stringValue ?? "?" }
        }
        XCTAssertEqual(try keys("file:"), ["file:a", "file:b"])
        XCTAssertEqual(try keys("net:"), ["net:x"])
        XCTAssertEqual(try keys(nil), ["file", "file:a", "file:b", "filez", "net:x"])
        XCTAssertEqual(try keys(""), ["file", "file:a", "file:b", "filez", "net:x"])
        XCTAssertEqual(try keys("file"), ["file", "file:a", "file:b", "filez"])
        XCTAssertEqual(try keys("zzz"), [])
        XCTAssertEqual(try keys("file_"), [], "'_' is not a wildcard")
        XCTAssertEqual(try keys("f%"), [], "'%' is not a wildcard")
        let listed = try listLocks(client, prefix: "file:")
        for lock in listed {
            assertHasKeys(lock, IntegrationTestCase.lockKeys + ["updated_at", "fencing_token", "waiters"], "listed lock")
        }
    }
}
