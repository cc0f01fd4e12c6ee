// Over the socket: AcquireNextNode with wait_ms (parked acquirers, arrival order,
// answers in order on their own connection, other connections not held up).
//
// The tests of who is woken go through AgentdClient. The tests of the order of answers on
// one connection stay on the raw line client: their point is which id each answer echoes,
// which AgentdClient matches up by position and does not show.

import XCTest
import Foundation
import AgentdClient

final class WaitingAcquireTests: FeatureTestCase {

    /// a, then b and c both depending on a. X holds a; P1 then P2 park; X completes a:
    /// P1 gets b and P2 gets c (arrival order, registration order).
    func testParkedAcquiresWokenInArrivalOrder() throws {
        let daemon = try makeDaemon()
        let x = try openConnection(daemon)
        let p1 = try openConnection(daemon)
        let p2 = try openConnection(daemon)
        let probe = try openConnection(daemon)
        let a = itUUID(), b = itUUID(), c = itUUID()
        let taskID = try registerTask(x, nodes: [nodeSpec(a), nodeSpec(b, [a]), nodeSpec(c, [a])])

        let held = try acquire(x, taskID, owner: "x")
        XCTAssertEqual(held["node_id"]?.stringValue, a)

        let wait1 = post(p1, "AcquireNextNode", ["task_id": .string(taskID), "lease_owner": "p1", "wait_ms": 10_000])
        try confirmParked(wait1, probe: probe, "P1's acquire with nothing runnable")
        let wait2 = post(p2, "AcquireNextNode", ["task_id": .string(taskID), "lease_owner": "p2", "wait_ms": 10_000])
        try confirmParked(wait2, probe: probe, "P2's acquire with nothing runnable")
        assertSilent(wait1, "P1 after P2 parked")

        try complete(x, taskID, held, result: ["done": "a"])

        let got1 = try answer(wait1, timeout: 5)
        let got2 = try answer(wait2, timeout: 5)
        XCTAssertEqual(got1["node_id"]?.stringValue, b, "the first parked acquirer gets the first node in registration order: \(got1)")
        XCTAssertEqual(got2["node_id"]?.stringValue, c, "the second parked acquirer gets the next: \(got2)")
        XCTAssertEqual(got1["lease_owner"]?.stringValue, "p1")
        XCTAssertEqual(got2["lease_owner"]?.stringValue, "p2")
        assertHasKeys(got1, ["task_id", "node_id", "lease_id", "lease_owner", "lease_expires_at", "context"], "woken acquire")
        XCTAssertEqual(got1["context"]?["node"]?["status"]?.stringValue, "RUNNING")
        XCTAssertEqual(got1["context"]?["completed_dependencies"]?[0]?["node_id"]?.stringValue, a)
        assertJSON(got1["context"]?["completed_dependencies"]?[0]?["result_payload"], #"{"done":"a"}"#)

        let status = try taskStatus(x, taskID)
        XCTAssertEqual(node(status, b)?["status"]?.stringValue, "RUNNING")
        XCTAssertEqual(node(status, b)?["lease_id"]?.stringValue, got1["lease_id"]?.stringValue)
        XCTAssertEqual(node(status, c)?["lease_id"]?.stringValue, got2["lease_id"]?.stringValue)
        XCTAssertEqual(counts(status), ["COMPLETED": 1, "RUNNING": 2])
    }

    /// With nothing runnable, wait_ms 200 ends with {"id":..,"result":null}; a Health sent
    /// behind it on the same connection is answered after it.
    func testParkedAcquireTimesOutWithNullAndKeepsOrder() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let a = itUUID(), b = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(a), nodeDef(b, [a])])
        _ = try acquire(client, taskID)

        let acquireID = try post(client, "AcquireNextNode", ["task_id": taskID, "wait_ms": 200])
        let healthID = try post(client, "Health")
        let first = try envelope(client, id: acquireID, timeout: 5)
        XCTAssertTrue(first["result"].exists, "result key present: \(first)")
        XCTAssertTrue(first["result"].isNull, "timed-out acquire answers null: \(first)")
        XCTAssertFalse(first["error"].exists, "\(first)")
        let second = try answer(client, id: healthID, timeout: 5)
        XCTAssertEqual(second["status"].string, "ok")

        // wait_ms 0 answers at once, as without it.
        let now = try client.call("AcquireNextNode", ["task_id": taskID, "wait_ms": 0])
        XCTAssertTrue(now.isNull, "\(now)")
    }

    /// A parked acquire holds up later answers on its own connection only: a Health on
    /// another connection is answered while it waits; once a node becomes runnable the
    /// parked connection gets the node and then its Health, in that order.
    func testParkedAcquireBlocksOnlyItsOwnConnection() throws {
        let daemon = try makeDaemon()
        let worker = try connect(daemon)
        let parked = try connect(daemon)
        let other = try connect(daemon)
        let a = itUUID(), b = itUUID()
        let taskID = try registerTask(worker, nodes: [nodeDef(a), nodeDef(b, [a])])
        let held = try acquire(worker, taskID)

        let acquireID = try post(parked, "AcquireNextNode", ["task_id": taskID, "wait_ms": 10_000])
        let healthID = try post(parked, "Health")
        // Other connections are answered at once.
        XCTAssertEqual(try other.call("Health")["status"].string, "ok")
        XCTAssertNotNil(try other.call("TaskStatus", ["task_id": taskID])["task"].object)
        assertSilent(parked, "the parked connection (its Health waits behind the parked acquire)")

        _ = try complete(worker, taskID, held, result: [:] as [String: Any])
        let got = try answer(parked, id: acquireID, timeout: 5)
        XCTAssertEqual(got["node_id"].string, b)
        XCTAssertEqual(try answer(parked, id: healthID, timeout: 5)["status"].string, "ok")
    }

    /// A parked acquirer whose connection closes leaves the queue: the next runnable node
    /// goes to the acquirer behind it.
    func testClosedParkedAcquirerLeavesQueue() throws {
        let daemon = try makeDaemon()
        let worker = try openConnection(daemon)
        let gone = try openConnection(daemon)
        let next = try openConnection(daemon)
        let probe = try openConnection(daemon)
        let a = itUUID(), b = itUUID()
        let taskID = try registerTask(worker, nodes: [nodeSpec(a), nodeSpec(b, [a])])
        let held = try acquire(worker, taskID)

        let waitGone = post(gone, "AcquireNextNode", ["task_id": .string(taskID), "lease_owner": "gone", "wait_ms": 10_000])
        try confirmParked(waitGone, probe: probe, "first acquirer")
        let waitNext = post(next, "AcquireNextNode", ["task_id": .string(taskID), "lease_owner": "next", "wait_ms": 10_000])
        try confirmParked(waitNext, probe: probe, "second acquirer")
        gone.close()
        // The close is seen by the daemon before a later request on another connection is answered.
        _ = try probe.call("Health")
        _ = try probe.call("Health")

        try complete(worker, taskID, held, result: [:])
        let got = try answer(waitNext, timeout: 5)
        XCTAssertEqual(got["node_id"]?.stringValue, b)
        XCTAssertEqual(got["lease_owner"]?.stringValue, "next")
        XCTAssertEqual(node(try taskStatus(worker, taskID), b)?["lease_owner"]?.stringValue, "next")
    }

    /// Two parked requests on one connection resolved in the opposite order (the later
    /// ReadEvents first, then the acquire) still answer in request order, then the Health.
    func testParkedRequestsOnOneConnectionAnswerInRequestOrder() throws {
        let daemon = try makeDaemon()
        let worker = try connect(daemon)
        let queue = try connect(daemon)
        let probe = try connect(daemon)
        let a = itUUID(), b = itUUID()
        let taskID = try registerTask(worker, nodes: [nodeDef(a), nodeDef(b, [a])])
        let held = try acquire(worker, taskID)

        let acquireID = try post(queue, "AcquireNextNode", ["task_id": taskID, "wait_ms": 10_000])
        let readID = try post(queue, "ReadEvents", ["task_id": taskID, "after_seq": 0, "wait_ms": 10_000])
        let healthID = try post(queue, "Health")
        try confirmParked(queue, probe: probe, "two parked requests and a Health")

        // Resolves the ReadEvents (seq 1); its answer must wait behind the parked acquire.
        _ = try worker.call("CommitEvent", ["task_id": taskID, "node_id": a, "lease_id": held["lease_id"].string!,
                                            "action_type": "NOTE", "payload": ["n": 1]])
        try confirmParked(queue, probe: probe, "the ReadEvents is answered but waits behind the acquire")

        _ = try complete(worker, taskID, held, result: [:] as [String: Any])
        let got = try answer(queue, id: acquireID, timeout: 5)
        XCTAssertEqual(got["node_id"].string, b)
        let events = try answer(queue, id: readID, timeout: 5)
        let seqs = (events["events"].array ?? []).map { $0["seq"].int ?? -1 }
        XCTAssertEqual(seqs.first, 1, "the ReadEvents carries the event that woke it: \(events)")
        XCTAssertEqual(events["events"][0]["action_type"].string, "NOTE")
        XCTAssertEqual(try answer(queue, id: healthID, timeout: 5)["status"].string, "ok")
    }
}
