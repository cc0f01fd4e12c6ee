// Over the socket: node names, and parked acquirers answered null when their task
// stops being ACTIVE.

import XCTest
import Foundation
import AgentdClient

final class NodeNameTests: FeatureTestCase {

    func testNamesAreKeptShownAndSurviveARestart() throws {
        let daemon = try makeDaemon()
        var client = try openConnection(daemon)
        let a = itUUID(), b = itUUID()
        let taskID = try registerTask(client, nodes: [["id": .string(a), "name": "fetch"],
                                                      ["id": .string(b), "dependencies": [.string(a)]]])
        let added = try client.call("AddNodes", ["task_id": .string(taskID),
                                                 "nodes": [["name": "report ✓", "dependencies": [.string(a)]]]])
        let c = try XCTUnwrap(added["node_ids"]?[0]?.stringValue)

        func check(_ label: String) throws {
            let status = try taskStatus(client, taskID)
            XCTAssertEqual(node(status, a)?["name"]?.stringValue, "fetch", label)
            XCTAssertNotNil(node(status, b)?["name"], "name is always there: \(label)")
            XCTAssertEqual(node(status, b)?["name"], .null, label)
            XCTAssertEqual(node(status, c)?["name"]?.stringValue, "report ✓", label)
        }
        try check("registered")
        let got = try acquire(client, taskID)
        XCTAssertEqual(got["context"]?["node"]?["name"]?.stringValue, "fetch")
        daemon.crash()
        try daemon.start()
        client = try openConnection(daemon)
        try check("after a restart")
        // Uniqueness is remembered across the restart too.
        expectReason(client, "AddNodes", ["task_id": .string(taskID), "nodes": [["name": "fetch"]]],
                     reason: "INVALID_DAG", message: "invalid state: duplicate node name: fetch")
        // The same name in another task is fine.
        _ = try registerTask(client, nodes: [["name": "fetch"]])

        let described = try client.call("DescribeInterface")
        XCTAssertTrue(try XCTUnwrap(described["node"]).compactText.contains("\"name\""), "DescribeInterface lists name")
        XCTAssertTrue((described["node_definition"]?.compactText ?? "").contains("\"name\""),
                      "node definitions list name")
    }

    func testBadNamesAreRefused() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        expectReason(client, "RegisterTask", ["goal": "g", "initial_nodes": [["name": "x"], ["name": "x"]]],
                     reason: "INVALID_DAG", message: "invalid state: duplicate node name: x")
        let taskID = try registerTask(client, nodes: [["name": "taken"]])
        expectReason(client, "AddNodes", ["task_id": .string(taskID), "nodes": [["name": "new"], ["name": "taken"]]],
                     reason: "INVALID_DAG", message: "invalid state: duplicate node name: taken")
        XCTAssertEqual(try taskStatus(client, taskID)["nodes"]?.arrayValue?.count, 1, "a refused batch adds nothing")
        expectReason(client, "RegisterTask", ["goal": "g", "initial_nodes": [["name": 5]]],
                     code: -32602, reason: "INVALID_PARAMS", prefix: "invalid params: invalid type for field `name`")
        let tooLong = String(repeating: "é", count: 101)   // 202 bytes
        expectReason(client, "RegisterTask", ["goal": "g", "initial_nodes": [["name": .string(tooLong)]]],
                     code: -32602, reason: "INVALID_PARAMS", prefix: "invalid params: field `name`")
        let longest = String(repeating: "é", count: 100)   // 200 bytes
        _ = try registerTask(client, nodes: [["name": .string(longest)]])
    }

    /// A parked acquire is answered null as soon as its task completes, fails, is cancelled
    /// or deleted, instead of at the end of its wait_ms.
    func testParkedAcquireEndsWhenTheTaskStopsBeingActive() throws {
        let daemon = try makeDaemon()
        let worker = try openConnection(daemon)
        let parked = try openConnection(daemon)
        let probe = try openConnection(daemon)
        let long: JSONValue = 60_000

        // Completed: the last node finishes while someone waits for more.
        var taskID = try registerTask(worker, nodes: [nodeSpec(itUUID())])
        var held = try acquire(worker, taskID)
        var waiting = post(parked, "AcquireNextNode", ["task_id": .string(taskID), "wait_ms": long])
        try confirmParked(waiting, probe: probe, "waiting on a task whose only node is running")
        try complete(worker, taskID, held, result: [:])
        XCTAssertTrue(try answer(waiting, timeout: 5).isNull, "task COMPLETED")

        // Failed: FailNode leaves nothing that can run.
        let a = itUUID()
        taskID = try registerTask(worker, nodes: [nodeSpec(a), nodeSpec(itUUID(), [a])])
        held = try acquire(worker, taskID)
        waiting = post(parked, "AcquireNextNode", ["task_id": .string(taskID), "wait_ms": long])
        try confirmParked(waiting, probe: probe, "waiting on a task with a dependency running")
        _ = try worker.call("FailNode", ["task_id": .string(taskID), "node_id": .string(a),
                                         "lease_id": .string(held["lease_id"]!.stringValue!), "error_payload": "no"])
        XCTAssertTrue(try answer(waiting, timeout: 5).isNull, "task FAILED")

        // Cancelled, then deleted (another waiter, on a task made finished by the cancel).
        taskID = try registerTask(worker, nodes: [nodeSpec(itUUID())])
        _ = try acquire(worker, taskID)
        waiting = post(parked, "AcquireNextNode", ["task_id": .string(taskID), "wait_ms": long])
        try confirmParked(waiting, probe: probe, "waiting before a cancel")
        _ = try worker.call("CancelTask", ["task_id": .string(taskID)])
        XCTAssertTrue(try answer(waiting, timeout: 5).isNull, "task CANCELLED")
        XCTAssertEqual(try taskStatus(worker, taskID)["task"]?["status"]?.stringValue, "CANCELLED")

        // Deleted: one may park on a finished task (AddNodes could revive it); deleting it ends that.
        taskID = try registerTask(worker, nodes: [nodeSpec(itUUID())])
        try complete(worker, taskID, try acquire(worker, taskID), result: [:])
        waiting = post(parked, "AcquireNextNode", ["task_id": .string(taskID), "wait_ms": long])
        try confirmParked(waiting, probe: probe, "waiting on a finished task")
        _ = try worker.call("DeleteTask", ["task_id": .string(taskID)])
        XCTAssertTrue(try answer(waiting, timeout: 5).isNull, "task deleted")
    }
}
