// Over the socket: release_on_disconnect on AcquireNextNode and AcquireResourceLock when
// the client process dies (kill -9) or closes its connection.

import XCTest
import Foundation

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
        let client = try connect(daemon)
        let waiter = try connect(daemon)
        let nodeID = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(nodeID)])

        let child = try spawnPython(DisconnectTests.doomedClient, [daemon.socketPath, taskID], directory: daemon.directory)
        var lines: [String] = []
        try waitUntil("the client process printed its three answers", timeout: 10) {
            if !child.isRunning { throw ITError("client process ended: \(child.exit!); stderr: \(child.stderr)") }
            lines = child.stdout.split(separator: "\n").map(String.init)
            return lines.count >= 3
        }
        let acquired = try ITJSON.parse(lines[0])["result"]
        let freeLock = try ITJSON.parse(lines[1])["result"]
        let wantedLock = try ITJSON.parse(lines[2])["result"]
        XCTAssertEqual(acquired["node_id"].string, nodeID, lines[0])
        let leaseID = try XCTUnwrap(acquired["lease_id"].string, lines[0])
        XCTAssertEqual(freeLock["owner"].string, "doomed", lines[1])
        let wantedToken = try XCTUnwrap(wantedLock["fencing_token"].int, lines[2])
        XCTAssertEqual(try nodeStatus(client, taskID, nodeID), "RUNNING")

        // Another connection parks on one of the locks.
        let waitID = try post(waiter, "AcquireResourceLock", ["resource_key": "held:wanted", "owner": "heir",
                                                               "ttl_secs": 30, "wait_ms": 10_000])
        try waitUntil("the heir is parked", timeout: 5) { try self.listedLock(client, "held:wanted")?["waiters"].int == 1 }

        child.killAndReap()

        let inherited = try answer(waiter, id: waitID, timeout: 5)
        XCTAssertEqual(inherited["owner"].string, "heir")
        XCTAssertGreaterThan(try XCTUnwrap(inherited["fencing_token"].int), wantedToken)
        try waitUntil("the node is PENDING again", timeout: 5) { try self.nodeStatus(client, taskID, nodeID) == "PENDING" }
        try waitUntil("the free lock is gone", timeout: 5) { try self.listedLock(client, "held:free") == nil }
        XCTAssertEqual(try listedLock(client, "held:wanted")?["owner"].string, "heir")

        let status = try taskStatus(client, taskID)
        for key in ["lease_id", "lease_owner", "lease_expires_at"] {
            XCTAssertTrue(node(status, nodeID)[key].isNull, "\(key) after the disconnect: \(node(status, nodeID))")
        }
        XCTAssertEqual(node(status, nodeID)["attempts"].int, 1)

        let expiries = try allEvents(client, taskID).filter { $0["action_type"].string == "LEASE_EXPIRED" }
        XCTAssertEqual(expiries.count, 1, "\(expiries)")
        if let event = expiries.first {
            XCTAssertEqual(event["node_id"].string, nodeID)
            XCTAssertEqual(event["payload"]["reason"].string, "disconnect", "\(event)")
            XCTAssertEqual(event["payload"]["lease_id"].string, leaseID, "\(event)")
            XCTAssertEqual(event["payload"]["lease_owner"].string, "doomed", "\(event)")
            XCTAssertEqual(event["payload"]["attempt"].int, 1, "\(event)")
        }
        // The old lease is stale; the node can be taken again.
        try expectReason(client, "HeartbeatNode", ["task_id": taskID, "node_id": nodeID, "lease_id": leaseID],
                         reason: "NODE_NOT_RUNNING")
        XCTAssertEqual(try acquire(client, taskID)["node_id"].string, nodeID)
    }

    /// An ordinary close does the same; without release_on_disconnect nothing is released.
    func testClosedConnectionReleasesOnlyBoundLeases() throws {
        let daemon = try makeDaemon()
        let observer = try connect(daemon)
        let bound = itUUID(), unbound = itUUID()
        let taskID = try registerTask(observer, nodes: [nodeDef(bound), nodeDef(unbound)])

        let leaver = try connect(daemon)
        let boundNode = try leaver.call("AcquireNextNode", ["task_id": taskID, "release_on_disconnect": true])
        XCTAssertEqual(boundNode["node_id"].string, bound)
        let unboundNode = try leaver.call("AcquireNextNode", ["task_id": taskID, "release_on_disconnect": false])
        XCTAssertEqual(unboundNode["node_id"].string, unbound)
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
        let worker = try connect(daemon)
        let probe = try connect(daemon)
        let a = itUUID(), b = itUUID()
        let taskID = try registerTask(worker, nodes: [nodeDef(a), nodeDef(b, [a])])
        let held = try acquire(worker, taskID)

        let waiter = try connect(daemon)
        let id = try post(waiter, "AcquireNextNode", ["task_id": taskID, "lease_owner": "bound", "wait_ms": 10_000,
                                                       "release_on_disconnect": true])
        try confirmParked(waiter, probe: probe, "bound acquirer")
        _ = try complete(worker, taskID, held, result: [:] as [String: Any])
        let got = try answer(waiter, id: id, timeout: 5)
        XCTAssertEqual(got["node_id"].string, b)
        waiter.close()

        try waitUntil("b is PENDING after its holder closed", timeout: 5) { try self.nodeStatus(worker, taskID, b) == "PENDING" }
        let expiries = try allEvents(worker, taskID).filter { $0["action_type"].string == "LEASE_EXPIRED" }
        XCTAssertEqual(expiries.count, 1)
        XCTAssertEqual(expiries.first?["payload"]["reason"].string, "disconnect")
        XCTAssertEqual(expiries.first?["payload"]["lease_id"].string, got["lease_id"].string)
    }
}
