// Over the socket: lock waiters (FIFO, granted on release and on expiry, null on
// timeout), fencing tokens across keys and restarts, ListResourceLocks prefix.

import XCTest
import Foundation

final class LockWaitingTests: FeatureTestCase {

    /// The listed waiters count of `key` (0 when the key is not listed).
    private func waiters(_ client: ITLineClient, _ key: String) throws -> Int {
        guard let listed = try listedLock(client, key) else { return 0 }
        return listed["waiters"].int ?? -1
    }

    /// A holds k; B then C wait; A releases -> B; B releases -> C. A 200 ms waiter gets
    /// null. A waiter whose connection closes leaves the queue.
    func testLockWaitersAreServedFIFO() throws {
        let daemon = try makeDaemon()
        let a = try connect(daemon)
        let b = try connect(daemon)
        let c = try connect(daemon)
        let observer = try connect(daemon)

        // wait_ms on a free key is granted at once.
        let lockA = try lock(a, "k", owner: "A", ttl: 30, extra: ["wait_ms": 10_000])
        let tokenA = try XCTUnwrap(lockA["fencing_token"].int, "fencing_token in \(lockA)")
        XCTAssertEqual(lockA["waiters"].int, 0, "a fresh grant has no waiters: \(lockA)")

        let idB = try post(b, "AcquireResourceLock", ["resource_key": "k", "owner": "B", "ttl_secs": 30, "wait_ms": 10_000])
        try waitUntil("B is parked on k", timeout: 5) { try self.waiters(observer, "k") == 1 }
        let idC = try post(c, "AcquireResourceLock", ["resource_key": "k", "owner": "C", "ttl_secs": 30, "wait_ms": 10_000])
        try waitUntil("C is parked on k", timeout: 5) { try self.waiters(observer, "k") == 2 }
        let listed = try XCTUnwrap(try listedLock(observer, "k"))
        XCTAssertEqual(listed["owner"].string, "A")
        XCTAssertEqual(listed["waiters"].int, 2)
        XCTAssertEqual(listed["fencing_token"].int, tokenA)
        assertSilent(b, "B while A holds k")
        assertSilent(c, "C while A holds k")

        try release(a, lockA)
        let lockB = try answer(b, id: idB, timeout: 5)
        XCTAssertEqual(lockB["resource_key"].string, "k")
        XCTAssertEqual(lockB["owner"].string, "B")
        XCTAssertNotEqual(lockB["lease_id"].string, lockA["lease_id"].string)
        let tokenB = try XCTUnwrap(lockB["fencing_token"].int, "\(lockB)")
        XCTAssertGreaterThan(tokenB, tokenA)
        assertHasKeys(lockB, IntegrationTestCase.lockKeys + ["fencing_token", "waiters"], "granted lock")
        assertSilent(c, "C while B holds k")
        XCTAssertEqual(try waiters(observer, "k"), 1)
        XCTAssertEqual(try listedLock(observer, "k")?["owner"].string, "B")

        // A's old lease is stale now.
        try expectReason(a, "ReleaseResourceLock", ["resource_key": "k", "lease_id": lockA["lease_id"].string!],
                         reason: "LOCK_NOT_HELD", message: "invalid state: resource lock k requires the current lease")

        // A short waiter times out with null while B holds the lock, and leaves the queue.
        let short = try connect(daemon)
        let shortID = try post(short, "AcquireResourceLock", ["resource_key": "k", "owner": "S", "wait_ms": 200])
        let timedOut = try envelope(short, id: shortID, timeout: 5)
        XCTAssertTrue(timedOut["result"].exists && timedOut["result"].isNull, "timed-out lock waiter gets null: \(timedOut)")
        XCTAssertEqual(try waiters(observer, "k"), 1, "the timed-out waiter left the queue")

        try release(b, lockB)
        let lockC = try answer(c, id: idC, timeout: 5)
        XCTAssertEqual(lockC["owner"].string, "C")
        XCTAssertGreaterThan(try XCTUnwrap(lockC["fencing_token"].int), tokenB)
        let final = try XCTUnwrap(try listedLock(observer, "k"))
        XCTAssertEqual(final["owner"].string, "C")
        XCTAssertEqual(final["waiters"].int, 0)
        XCTAssertEqual(final["lease_id"].string, lockC["lease_id"].string)
    }

    /// A parked lock waiter whose connection closes leaves the queue: it is no longer
    /// counted, and a release goes to the waiter behind it.
    func testClosedLockWaiterLeavesQueue() throws {
        let daemon = try makeDaemon()
        let holder = try connect(daemon)
        let quitter = try connect(daemon)
        let stayer = try connect(daemon)
        let observer = try connect(daemon)

        let held = try lock(holder, "q", owner: "H", ttl: 30)
        try post(quitter, "AcquireResourceLock", ["resource_key": "q", "owner": "Q", "ttl_secs": 30, "wait_ms": 10_000])
        try waitUntil("Q is parked on q", timeout: 5) { try self.waiters(observer, "q") == 1 }
        let stayID = try post(stayer, "AcquireResourceLock", ["resource_key": "q", "owner": "S", "ttl_secs": 30, "wait_ms": 10_000])
        try waitUntil("S is parked on q", timeout: 5) { try self.waiters(observer, "q") == 2 }
        quitter.close()
        do {
            try waitUntil("Q left the queue", timeout: 3) { try self.waiters(observer, "q") == 1 }
        } catch {
            XCTFail("\(error)")
        }
        try release(holder, held)
        let granted = try answer(stayer, id: stayID, timeout: 5)
        XCTAssertEqual(granted["owner"].string, "S", "the lock goes to the live waiter: \(granted)")
        XCTAssertEqual(try listedLock(observer, "q")?["owner"].string, "S")
    }

    /// A waiter is granted the lock when the holder's lock expires (ttl 1 s).
    func testLockWaiterGrantedOnExpiry() throws {
        let daemon = try makeDaemon()
        let holder = try connect(daemon)
        let waiter = try connect(daemon)
        let observer = try connect(daemon)

        let first = try lock(holder, "exp", owner: "H", ttl: 1)
        let tokenH = try XCTUnwrap(first["fencing_token"].int)
        let id = try post(waiter, "AcquireResourceLock", ["resource_key": "exp", "owner": "W", "ttl_secs": 30, "wait_ms": 10_000])
        try waitUntil("W is parked on exp", timeout: 5) { try self.waiters(observer, "exp") == 1 }

        let granted = try answer(waiter, id: id, timeout: 8)
        XCTAssertEqual(granted["owner"].string, "W")
        XCTAssertGreaterThan(try XCTUnwrap(granted["fencing_token"].int), tokenH)
        let listed = try XCTUnwrap(try listedLock(observer, "exp"))
        XCTAssertEqual(listed["owner"].string, "W")
        XCTAssertEqual(listed["lease_id"].string, granted["lease_id"].string)
        XCTAssertEqual(listed["waiters"].int, 0)
        // The waiter's own ttl applies from the grant.
        if let acquired = listed["acquired_at"].int, let expires = listed["lease_expires_at"].int {
            // The first whole second at or after the grant + 30 s: 30 or 31 after acquired_at.
            XCTAssertTrue([30, 31].contains(expires - acquired), "\(listed)")
        } else {
            XCTFail("lock times are not integers: \(listed)")
        }
        try expectReason(holder, "HeartbeatResourceLock", ["resource_key": "exp", "lease_id": first["lease_id"].string!],
                         reason: "LOCK_NOT_HELD", message: "invalid state: resource lock exp requires the current active lease")
    }

    /// Tokens rise strictly across keys, re-grants, and a kill -9 plus restart on the same db.
    func testFencingTokensRiseAcrossKeysAndRestart() throws {
        let daemon = try makeDaemon()
        var client = try connect(daemon)
        var seen: [Int] = []

        let k1 = try lock(client, "k1", ttl: 30)
        let k2 = try lock(client, "k2", ttl: 30)
        seen.append(try XCTUnwrap(k1["fencing_token"].int, "\(k1)"))
        seen.append(try XCTUnwrap(k2["fencing_token"].int, "\(k2)"))
        // A held lock answers null and takes no token; a heartbeat keeps the token.
        XCTAssertTrue(try lock(client, "k1", ttl: 30).isNull)
        XCTAssertEqual(try client.call("HeartbeatResourceLock", ["resource_key": "k1", "lease_id": k1["lease_id"].string!,
                                                                 "ttl_secs": 60])["ok"].bool, true)
        XCTAssertEqual(try listedLock(client, "k1")?["fencing_token"].int, seen[0])
        try release(client, k1)
        let k1again = try lock(client, "k1", ttl: 30)
        seen.append(try XCTUnwrap(k1again["fencing_token"].int))
        try release(client, k1again)
        try release(client, k2)

        daemon.crash()
        try daemon.start()
        client = try connect(daemon)
        let k3 = try lock(client, "k3", ttl: 30)
        seen.append(try XCTUnwrap(k3["fencing_token"].int, "\(k3)"))
        let k1third = try lock(client, "k1", ttl: 30)
        seen.append(try XCTUnwrap(k1third["fencing_token"].int))

        for (earlier, later) in zip(seen, seen.dropFirst()) {
            XCTAssertLessThan(earlier, later, "fencing tokens must rise strictly: \(seen)")
        }

        // And once more with a lock still held over the crash: it keeps its token.
        daemon.crash()
        try daemon.start()
        client = try connect(daemon)
        XCTAssertEqual(try listedLock(client, "k3")?["fencing_token"].int, seen[3])
        let k4 = try lock(client, "k4", ttl: 30)
        XCTAssertGreaterThan(try XCTUnwrap(k4["fencing_token"].int), seen.last!)
    }

    /// ListResourceLocks {prefix}: only keys starting with it (a plain string prefix, no
    /// wildcards), sorted by key.
    func testListResourceLocksPrefix() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        for key in ["file:b", "net:x", "file:a", "file", "filez"] {
            XCTAssertFalse(try lock(client, key, ttl: 30).isNull, key)
        }
        func keys(_ prefix: String?) throws -> [String] {
            try listLocks(client, prefix: prefix).map { $0["resource_key"].string ?? "?" }
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
