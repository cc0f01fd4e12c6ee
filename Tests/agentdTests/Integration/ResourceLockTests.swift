// Integration: exclusive resource locks between agents of different providers.

import XCTest
import Foundation
import AgentdClient

final class ResourceLockTests: IntegrationTestCase {

    /// Two providers contend for file:src/lib.rs; heartbeats, listing and release with
    /// right and wrong leases; the second provider gets it after the release.
    func testTwoProvidersContendForAFile() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let key = "file:src/lib.rs"
        let keyValue = JSONValue.string(key)

        let before = Int(unixNow().rounded(.down))
        let lock = try client.call("AcquireResourceLock", ["resource_key": keyValue, "owner": "codex-cli", "provider": "openai",
                                                           "ttl_secs": 30, "metadata": ["intent": "edit"]])
        let after = Int(unixNow().rounded(.up))
        assertHasKeys(lock, Self.lockKeys, "lock object")
        XCTAssertEqual(lock["resource_key"]?.stringValue, key)
        XCTAssertEqual(lock["owner"]?.stringValue, "codex-cli")
        XCTAssertEqual(lock["provider"]?.stringValue, "openai")
        XCTAssertEqual(lock["task_id"], .null, "\(lock)")
        XCTAssertEqual(lock["node_id"], .null, "\(lock)")
        assertJSON(lock["metadata"], #"{"intent":"edit"}"#)
        let leaseID = try XCTUnwrap(lock["lease_id"]?.stringValue)
        let acquiredAt = try XCTUnwrap(lock["acquired_at"]?.int, "\(lock)")
        let expiresAt = try XCTUnwrap(lock["lease_expires_at"]?.int, "\(lock)")
        XCTAssertTrue((before...after).contains(acquiredAt), "acquired_at \(acquiredAt) not now (\(before)...\(after))")
        XCTAssertLessThanOrEqual(abs(expiresAt - (acquiredAt + 30)), 1, "lease_expires_at = acquired_at + ttl: \(lock)")

        // A result that is JSON null (AgentdConnection refuses an answer without "result").
        let contended = try client.call("AcquireResourceLock", ["resource_key": keyValue, "owner": "claude-code",
                                                                "provider": "anthropic", "ttl_secs": 30])
        XCTAssertTrue(contended.isNull, "held lock answers null: \(contended)")
        let sameOwner = try client.call("AcquireResourceLock", ["resource_key": keyValue, "owner": "codex-cli",
                                                                "provider": "openai", "ttl_secs": 30])
        XCTAssertTrue(sameOwner.isNull, "the same owner asking again also gets null: \(sameOwner)")

        assertJSON(try client.call("HeartbeatResourceLock", ["resource_key": keyValue, "lease_id": .string(leaseID)]), #"{"ok":true}"#)
        assertJSON(try client.call("HeartbeatResourceLock", ["resource_key": keyValue, "lease_id": .string(leaseID), "ttl_secs": 45]),
                   #"{"ok":true}"#)
        expectError(client, "HeartbeatResourceLock", ["resource_key": keyValue, "lease_id": .string(itUUID())], code: -32000,
                    message: "invalid state: resource lock file:src/lib.rs requires the current active lease")

        let listed = try client.call("ListResourceLocks")
        let locks = try XCTUnwrap(listed["locks"]?.arrayValue, "\(listed)")
        XCTAssertEqual(locks.count, 1, "\(listed)")
        if let only = locks.first {
            assertHasKeys(only, Self.lockKeys + ["updated_at"], "listed lock")
            XCTAssertEqual(only["resource_key"]?.stringValue, key)
            XCTAssertEqual(only["lease_id"]?.stringValue, leaseID)
            XCTAssertEqual(only["owner"]?.stringValue, "codex-cli")
            XCTAssertEqual(only["provider"]?.stringValue, "openai")
            assertJSON(only["metadata"], #"{"intent":"edit"}"#)
            XCTAssertEqual(only["acquired_at"]?.int, acquiredAt)
            let extended = try XCTUnwrap(only["lease_expires_at"]?.int)
            let now = Int(unixNow())
            XCTAssertTrue((now + 43)...(now + 47) ~= extended, "heartbeat with ttl 45 sets expiry to now + 45: \(only)")
            XCTAssertNotNil(only["updated_at"]?.int)
        }

        expectError(client, "ReleaseResourceLock", ["resource_key": keyValue, "lease_id": .string(itUUID())], code: -32000,
                    message: "invalid state: resource lock file:src/lib.rs requires the current lease")
        assertJSON(try client.call("ReleaseResourceLock", ["resource_key": keyValue, "lease_id": .string(leaseID)]), #"{"ok":true}"#)
        XCTAssertEqual(try client.call("ListResourceLocks")["locks"]?.arrayValue?.count, 0)

        let second = try client.call("AcquireResourceLock", ["resource_key": keyValue, "owner": "claude-code",
                                                             "provider": "anthropic", "ttl_secs": 30])
        XCTAssertEqual(second["owner"]?.stringValue, "claude-code", "\(second)")
        XCTAssertNotNil(second["lease_id"]?.stringValue)
        XCTAssertNotEqual(second["lease_id"]?.stringValue, leaseID)

        // The released lease is stale now.
        expectError(client, "ReleaseResourceLock", ["resource_key": keyValue, "lease_id": .string(leaseID)], code: -32000,
                    message: "invalid state: resource lock file:src/lib.rs requires the current lease")

        let missingTask = itUUID()
        expectError(client, "AcquireResourceLock", ["resource_key": "file:other.rs", "owner": "x", "task_id": .string(missingTask)],
                    code: -32000, message: "task not found: \(missingTask)")

        let metrics = try client.call("Metrics")
        XCTAssertEqual(metrics["runtime"]?["acquired_resource_locks"]?.int, 2, "\(metrics)")
        XCTAssertEqual(metrics["runtime"]?["released_resource_locks"]?.int, 1, "\(metrics)")
        XCTAssertEqual(metrics["database"]?["active_resource_locks"]?.int, 1, "\(metrics)")
    }

    /// A lock tied to a task and node keeps those ids; default owner "anonymous", default
    /// provider null, default metadata {}; ListResourceLocks is sorted by key.
    func testLockDefaultsTaskBindingAndSorting() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let nodeID = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(nodeID)])

        let bound = try client.call("AcquireResourceLock", ["resource_key": "repo:zeta", "task_id": .string(taskID),
                                                            "node_id": .string(nodeID)])
        XCTAssertEqual(bound["task_id"]?.stringValue, taskID)
        XCTAssertEqual(bound["node_id"]?.stringValue, nodeID)
        XCTAssertEqual(bound["owner"]?.stringValue, "anonymous")
        XCTAssertEqual(bound["provider"], .null, "\(bound)")
        assertJSON(bound["metadata"], "{}")
        // ttl_secs defaults to the node timeout (300 s by default).
        if let acquired = bound["acquired_at"]?.int, let expires = bound["lease_expires_at"]?.int {
            XCTAssertLessThanOrEqual(abs(expires - acquired - 300), 1, "\(bound)")
        }
        _ = try client.call("AcquireResourceLock", ["resource_key": "repo:alpha", "owner": "o"])
        _ = try client.call("AcquireResourceLock", ["resource_key": "repo:mid", "owner": "o"])
        let keys = (try client.call("ListResourceLocks")["locks"]?.arrayValue ?? []).map { $0["resource_key"]?.stringValue ?? "?" }
        XCTAssertEqual(keys, ["repo:alpha", "repo:mid", "repo:zeta"])
    }

    /// A lock with ttl 1 s disappears from the list once expired; a new owner can take it;
    /// the old lease is refused on heartbeat and release.
    func testLockExpiry() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let key = "file:expiring.txt"
        let lock = try client.call("AcquireResourceLock", ["resource_key": .string(key), "owner": "slow-agent", "ttl_secs": 1])
        let oldLease = try XCTUnwrap(lock["lease_id"]?.stringValue, "\(lock)")
        // The first whole second at or after now + 1 s: 1 or 2 after acquired_at (now's floor).
        XCTAssertTrue([1, 2].contains(lock["lease_expires_at"]?.int.map { $0 - (lock["acquired_at"]?.int ?? 0) } ?? 0), "\(lock)")

        try waitUntil("the expired lock leaves ListResourceLocks", timeout: 10) {
            try client.call("ListResourceLocks")["locks"]?.arrayValue?.count == 0
        }
        let taken = try client.call("AcquireResourceLock", ["resource_key": .string(key), "owner": "fast-agent", "ttl_secs": 30])
        XCTAssertEqual(taken["owner"]?.stringValue, "fast-agent", "an expired lock can be taken by anyone: \(taken)")
        XCTAssertNotEqual(taken["lease_id"]?.stringValue, oldLease)

        expectError(client, "HeartbeatResourceLock", ["resource_key": .string(key), "lease_id": .string(oldLease)], code: -32000,
                    message: "invalid state: resource lock \(key) requires the current active lease")
        expectError(client, "ReleaseResourceLock", ["resource_key": .string(key), "lease_id": .string(oldLease)], code: -32000,
                    message: "invalid state: resource lock \(key) requires the current lease")
        let listed = try client.call("ListResourceLocks")["locks"]?.arrayValue
        XCTAssertEqual(listed?.count, 1)
        XCTAssertEqual(listed?.first?["owner"]?.stringValue, "fast-agent")
    }

    /// An expired lock that nobody took: its old lease is refused too, and the same owner
    /// may take it again.
    func testExpiredLockRefusesOldLeaseBeforeRetake() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let key = "branch:main"
        let lock = try client.call("AcquireResourceLock", ["resource_key": .string(key), "owner": "a", "ttl_secs": 1])
        let oldLease = try XCTUnwrap(lock["lease_id"]?.stringValue)
        try waitUntil("the lock expires", timeout: 10) {
            try client.call("ListResourceLocks")["locks"]?.arrayValue?.count == 0
        }
        expectError(client, "HeartbeatResourceLock", ["resource_key": .string(key), "lease_id": .string(oldLease)], code: -32000,
                    message: "invalid state: resource lock \(key) requires the current active lease")
        let again = try client.call("AcquireResourceLock", ["resource_key": .string(key), "owner": "a", "ttl_secs": 30])
        XCTAssertEqual(again["owner"]?.stringValue, "a")
        XCTAssertNotEqual(again["lease_id"]?.stringValue, oldLease)
    }
}
