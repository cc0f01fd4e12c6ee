// Integration: node leases that expire, and the stale leases they leave behind.

import XCTest
import Foundation
import AgentdClient

final class LeaseTests: IntegrationTestCase {

    /// A lease left to expire (node timeout 1 s) puts the node back to PENDING; a new
    /// acquire gets it with a new lease; every write with the old lease is refused with the
    /// original's messages; the new lease completes.
    func testStaleLeaseAfterExpiryIsRefused() throws {
        let daemon = try makeDaemon(["--node-timeout", "1"])
        let client = try openConnection(daemon)
        let nodeID = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(nodeID)])

        XCTAssertEqual(try client.call("Health")["running_timeout_secs"]?.int, 1)

        let old = try acquire(client, taskID, owner: "old-worker")
        XCTAssertEqual(old["node_id"]?.stringValue, nodeID)
        let oldLease = try XCTUnwrap(old["lease_id"]?.stringValue)

        try waitUntil("the expired node is PENDING again", timeout: 10) {
            try nodeStatus(client, taskID, nodeID) == "PENDING"
        }
        let status = try taskStatus(client, taskID)
        for key in ["lease_id", "lease_owner", "lease_expires_at"] {
            XCTAssertEqual(status["nodes"]?[0]?[key], .null, "\(key) after expiry: \(status["nodes"]?[0] ?? .null)")
        }

        let new = try acquire(client, taskID, owner: "new-worker")
        XCTAssertEqual(new["node_id"]?.stringValue, nodeID)
        let newLease = try XCTUnwrap(new["lease_id"]?.stringValue)
        XCTAssertNotEqual(newLease, oldLease)
        XCTAssertEqual(new["lease_owner"]?.stringValue, "new-worker")

        expectError(client, "CompleteNode", ["task_id": .string(taskID), "node_id": .string(nodeID), "lease_id": .string(oldLease),
                                             "result_payload": ["stale": true]],
                    code: -32000, message: "invalid state: node \(nodeID) cannot transition from RUNNING to COMPLETED")
        expectError(client, "HeartbeatNode", ["task_id": .string(taskID), "node_id": .string(nodeID), "lease_id": .string(oldLease)],
                    code: -32000, message: "node \(nodeID) for task \(taskID) is not RUNNING")
        expectError(client, "CommitEvent", ["task_id": .string(taskID), "node_id": .string(nodeID), "lease_id": .string(oldLease),
                                            "payload": ["stale": true]],
                    code: -32000, message: "invalid state: node \(nodeID) for task \(taskID) requires the current RUNNING lease")
        expectError(client, "FailNode", ["task_id": .string(taskID), "node_id": .string(nodeID), "lease_id": .string(oldLease),
                                         "error_payload": ["stale": true]],
                    code: -32000, message: "invalid state: node \(nodeID) cannot transition from RUNNING to FAILED")

        let done = try client.call("CompleteNode", ["task_id": .string(taskID), "node_id": .string(nodeID),
                                                    "lease_id": .string(newLease), "result_payload": ["fresh": true]])
        XCTAssertNotNil(done["event_id"]?.stringValue)
        let final = try taskStatus(client, taskID)
        XCTAssertEqual(final["nodes"]?[0]?["status"]?.stringValue, "COMPLETED")
        assertJSON(final["nodes"]?[0]?["result_payload"], #"{"fresh":true}"#)
        XCTAssertGreaterThanOrEqual(try client.call("Metrics")["runtime"]?["timeout_rollbacks"]?.int ?? -1, 1)
    }

    /// With a node timeout of 0 a lease is expired as soon as it is granted: the node can be
    /// acquired again (bounded poll) and the new lease is a different one.
    func testZeroNodeTimeoutReacquireGetsNewLease() throws {
        let daemon = try makeDaemon(["--node-timeout", "0"])
        let client = try openConnection(daemon)
        let nodeID = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(nodeID)])

        let old = try acquire(client, taskID, owner: "old-worker")
        var again = JSONValue.null
        try waitUntil("the node can be acquired again", timeout: 10) {
            again = try client.call("AcquireNextNode", ["task_id": .string(taskID), "lease_owner": "new-worker"])
            return !again.isNull
        }
        XCTAssertEqual(again["node_id"]?.stringValue, nodeID)
        XCTAssertNotNil(again["lease_id"]?.stringValue)
        XCTAssertNotEqual(again["lease_id"]?.stringValue, old["lease_id"]?.stringValue)

        let refused = expectError(client, "CompleteNode", ["task_id": .string(taskID), "node_id": .string(nodeID),
                                                           "lease_id": .string(old["lease_id"]!.stringValue!),
                                                           "result_payload": [:]],
                                  code: -32000)
        let message = refused?.message ?? ""
        XCTAssertTrue(message.hasPrefix("invalid state: node ") || message.hasPrefix("node "), "the old lease is stale: \(message)")
    }

    /// HeartbeatNode pushes the lease forward to now + timeout and answers {"ok":true}.
    func testHeartbeatExtendsLease() throws {
        let daemon = try makeDaemon(["--node-timeout", "30"])
        let client = try openConnection(daemon)
        let nodeID = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(nodeID)])
        let acquired = try acquire(client, taskID)
        let before = unixNow()
        let beat = try client.call("HeartbeatNode", ["task_id": .string(taskID), "node_id": .string(nodeID),
                                                     "lease_id": .string(acquired["lease_id"]!.stringValue!)])
        let after = unixNow()
        assertJSON(beat, #"{"ok":true}"#)
        let expires = try XCTUnwrap(try taskStatus(client, taskID)["nodes"]?[0]?["lease_expires_at"]?.int)
        XCTAssertGreaterThanOrEqual(Double(expires), (before + 30).rounded(.down) - 1)
        XCTAssertLessThanOrEqual(Double(expires), (after + 30).rounded(.up) + 1)
        XCTAssertEqual(try client.call("Metrics")["runtime"]?["heartbeats"]?.int, 1)
    }
}
