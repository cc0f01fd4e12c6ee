// Over the socket: release_on_disconnect on AcquireNextNode and AcquireResourceLock when
// the client process dies (kill -9) or closes its connection.
//
// The process that dies is a Python client of its own (it must be killable); the test's
// other connections go through AgentdClient.

import XCTest
import Foundation
import AgentdClient

final class DisconnectTests: FeatureTestCase {

    /// A client process that takes a node and two locks with release_on_disconnect, prints
    /// the three answers and sleeps. argv: socket, task id.
    private static let doomedClient = """
    import json, socket, sys, time
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    f = s.makefile('rwb')
    def call(i, method, params):
        f.write((json.dumps({"id": i, "method": method, "params": params}) + "\\n").encode())
        f.flush()
        line = f.readline()
        sys.stdout.write(line.decode())
        sys.stdout.flush()
    call(1, "AcquireNextNode", {"task_id": sys.argv[2], "lease_owner": "doomed", "release_on_disconnect": True})
    call(2, "AcquireResourceLock", {"resource_key": "held:free", "owner": "doomed", "ttl_secs": 600, "release_on_disconnect": True})
    call(3, "AcquireResourceLock", {"resource_key": "held:wanted", "owner": "doomed", "ttl_secs": 600, "release_on_disconnect": True})
    time.sleep(600)
    """

    func testKilledClientReleasesNodeAndLocks() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let waiter = try openConnection(daemon)
        let nodeID = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(nodeID)])

        let child = try spawnPython(DisconnectTests.doomedClient, [daemon.socketPath, taskID], directory: daemon.directory)
        var lines: [String] = []
        try waitUntil("the client process printed its three answers", timeout: 10) {
            if !child.isRunning { throw ITError("client process ended: \(child.exit!); stderr: \(child.stderr)") }
            lines = child.stdout.split(separator: "\n").map(String.init)
            return lines.count >= 3
        }
        let acquired = try JSONValue.parse(lines[0])["result"]
        let freeLock = try JSONValue.parse(lines[1])["result"]
        let wantedLock = try JSONValue.parse(lines[2])["result"]
        XCTAssertEqual(acquired?["node_id"]?.stringValue, nodeID, lines[0])
        let leaseID = try XCTUnwrap(acquired?["lease_id"]?.stringValue, lines[0])
        XCTAssertEqual(freeLock?["owner"]?.stringValue, "doomed", lines[1])
        let wantedToken = try XCTUnwrap(wantedLock?["fencing_token"]?.int, lines[2])
        XCTAssertEqual(try nodeStatus(client, taskID, nodeID), "RUNNING")

        // Another connection parks on one of the locks.
        let waiting = post(waiter, "AcquireResourceLock", ["resource_key": "held:wanted", "owner": "heir",
                                                           "ttl_secs": 30, "wait_ms": 10_000])
        try waitUntil("the heir is parked", timeout: 5) { try self.listedLock(client, "held:wanted")?["waiters"]?.int == 1 }

        child.killAndReap()

        let inherited = try answer(waiting, timeout: 5)
        XCTAssertEqual(inherited["owner"]?.stringValue, "heir")
        XCTAssertGreaterThan(try XCTUnwrap(inherited["fencing_token"]?.int), wantedToken)
        try waitUntil("the node is PENDING again", timeout: 5) { try self.nodeStatus(client, taskID, nodeID) == "PENDING" }
        try waitUntil("the free lock is gone", timeout: 5) { try self.listedLock(client, "held:free") == nil }
        XCTAssertEqual(try listedLock(client, "held:wanted")?["owner"]?.stringValue, "heir")

        let status = try taskStatus(client, taskID)
        let released = try XCTUnwrap(node(status, nodeID), "\(status)")
        for key in ["lease_id", "lease_owner", "lease_expires_at"] {
            XCTAssertEqual(released[key], .null, "\(key) after the disconnect: \(released)")
        }
        XCTAssertEqual(released["attempts"]?.int, 1)

        let expiries = try allEvents(client, taskID).filter { $0["action_type"]?.stringValue == "LEASE_EXPIRED" }
        XCTAssertEqual(expiries.count, 1, "\(expiries)")
        if let event = expiries.first {
            XCTAssertEqual(event["node_id"]?.stringValue, nodeID)
            XCTAssertEqual(event["payload"]?["reason"]?.stringValue, "disconnect", "\(event)")
            XCTAssertEqual(event["payload"]?["lease_id"]?.stringValue, leaseID, "\(event)")
            XCTAssertEqual(event["payload"]?["lease_owner"]?.stringValue, "doomed", "\(event)")
            XCTAssertEqual(event["payload"]?["attempt"]?.int, 1, "\(event)")
        }
        // The old lease is stale; the node can be taken again.
        expectReason(client, "HeartbeatNode", ["task_id": .string(taskID), "node_id": .string(nodeID), "lease_id": .string(leaseID)],
                     reason: "NODE_NOT_RUNNING")
        XCTAssertEqual(try acquire(client, taskID)["node_id"]?.stringValue, nodeID)
    }

    /// An ordinary close does the same; without release_on_disconnect nothing is released.
    func testClosedConnectionReleasesOnlyBoundLeases() throws {
        let daemon = try makeDaemon()
        let observer = try openConnection(daemon)
        let bound = itUUID(), unbound = itUUID()
        let taskID = try registerTask(observer, nodes: [nodeSpec(bound), nodeSpec(unbound)])

        let leaver = try openConnection(daemon)
        let boundNode = try leaver.call("AcquireNextNode", ["task_id": .string(taskID), "release_on_disconnect": true])
        XCTAssertEqual(boundNode["node_id"]?.stringValue, bound)
        let unboundNode = try leaver.call("AcquireNextNode", ["task_id": .string(taskID), "release_on_disconnect": false])
        XCTAssertEqual(unboundNode["node_id"]?.stringValue, unbound)
        XCTAssertFalse(try lock(leaver, "bound", ttl: 60, extra: ["release_on_disconnect": true]).isNull)
        XCTAssertFalse(try lock(leaver, "kept", ttl: 60).isNull)
        leaver.close()

        try waitUntil("the bound lock is released", timeout: 5) { try self.listedLock(observer, "bound") == nil }
        try waitUntil("the bound node is PENDING", timeout: 5) { try self.nodeStatus(observer, taskID, bound) == "PENDING" }
        XCTAssertNotNil(try listedLock(observer, "kept"), "a lock without release_on_disconnect stays")
        XCTAssertEqual(try nodeStatus(observer, taskID, unbound), "RUNNING", "a lease without release_on_disconnect stays")
    }

    /// A parked acquire with release_on_disconnect that is served later is bound to its
    /// connection: closing it puts the node back to PENDING (journaled as a disconnect).
    func testServedWaiterIsBoundToItsConnection() throws {
        let daemon = try makeDaemon()
        let worker = try openConnection(daemon)
        let probe = try openConnection(daemon)
        let a = itUUID(), b = itUUID()
        let taskID = try registerTask(worker, nodes: [nodeSpec(a), nodeSpec(b, [a])])
        let held = try acquire(worker, taskID)

        let waiter = try openConnection(daemon)
        let waiting = post(waiter, "AcquireNextNode", ["task_id": .string(taskID), "lease_owner": "bound", "wait_ms": 10_000,
                                                       "release_on_disconnect": true])
        try confirmParked(waiting, probe: probe, "bound acquirer")
        try complete(worker, taskID, held, result: [:])
        let got = try answer(waiting, timeout: 5)
        XCTAssertEqual(got["node_id"]?.stringValue, b)
        waiter.close()

        try waitUntil("b is PENDING after its holder closed", timeout: 5) { try self.nodeStatus(worker, taskID, b) == "PENDING" }
        let expiries = try allEvents(worker, taskID).filter { $0["action_type"]?.stringValue == "LEASE_EXPIRED" }
        XCTAssertEqual(expiries.count, 1)
        XCTAssertEqual(expiries.first?["payload"]?["reason"]?.stringValue, "disconnect")
        XCTAssertEqual(expiries.first?["payload"]?["lease_id"]?.stringValue, got["lease_id"]?.stringValue)
    }
}
