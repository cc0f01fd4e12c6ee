// Over the socket: node names, and parked acquirers answered null when their task
// stops being ACTIVE.

import XCTest
import Foundation

final class NodeNameTests: FeatureTestCase {

    func testNamesAreKeptShownAndSurviveARestart() throws {
        let daemon = try makeDaemon()
        var client = try connect(daemon)
        let a = itUUID(), b = itUUID()
        let taskID = try registerTask(client, nodes: [["id": a, "name": "fetch"], ["id": b, "dependencies": [a]]])
        let added = try client.call("AddNodes", ["task_id": taskID, "nodes": [["name": "report ✓", "dependencies": [a]]]])
        let c = try XCTUnwrap(added["node_ids"][0].string)

        func check(_ label: String) throws {
            let status = try taskStatus(client, taskID)
            XCTAssertEqual(node(status, a)["name"].string, "fetch", label)
            XCTAssertTrue(node(status, b)["name"].exists, "name is always there: \(label)")
            XCTAssertTrue(node(status, b)["name"].isNull, label)
            XCTAssertEqual(node(status, c)["name"].string, "report ✓", label)
        }
        try check("registered")
        let got = try acquire(client, taskID)
        XCTAssertEqual(got["context"]["node"]["name"].string, "fetch")
        daemon.crash()
        try daemon.start()
        client = try connect(daemon)
        try check("after a restart")
        // Uniqueness is remembered across the restart too.
        try expectReason(client, "AddNodes", ["task_id": taskID, "nodes": [["name": "fetch"]]],
                         reason: "INVALID_DAG", message: "invalid state: duplicate node name: fetch")
        // The same name in another task is fine.
        _ = try registerTask(client, nodes: [["name": "fetch"]])

        let described = try client.call("DescribeInterface")
        XCTAssertTrue(itJSONText(described["node"].value!).contains("\"name\""), "DescribeInterface lists name")
        XCTAssertTrue(itJSONText(described["node_definition"].value ?? "").contains("\"name\""),
                      "node definitions list name")
    }

    func testBadNamesAreRefused() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        try expectReason(client, "RegisterTask", ["goal": "g", "initial_nodes": [["name": "x"], ["name": "x"]]],
                         reason: "INVALID_DAG", message: "invalid state: duplicate node name: x")
        let taskID = try registerTask(client, nodes: [["name": "taken"]])
        try expectReason(client, "AddNodes", ["task_id": taskID, "nodes": [["name": "new"], ["name": "taken"]]],
                         reason: "INVALID_DAG", message: "invalid state: duplicate node name: taken")
        XCTAssertEqual(try taskStatus(client, taskID)["nodes"].count, 1, "a refused batch adds nothing")
        try expectReason(client, "RegisterTask", ["goal": "g", "initial_nodes": [["name": 5]]],
                         code: -32602, reason: "INVALID_PARAMS", prefix: "invalid params: invalid type for field `name`")
        let tooLong = String(repeating: "é", count: 101)   // 202 bytes
        try expectReason(client, "RegisterTask", ["goal": "g", "initial_nodes": [["name": tooLong]]],
                         code: -32602, reason: "INVALID_PARAMS", prefix: "invalid params: field `name`")
        let longest = String(repeating: "é", count: 100)   // 200 bytes
        _ = try registerTask(client, nodes: [["name": longest]])
    }

    /// A parked acquire is answered null as soon as its task completes, fails, is cancelled
    /// or deleted, instead of at the end of its wait_ms.
    func testParkedAcquireEndsWhenTheTaskStopsBeingActive() throws {
        let daemon = try makeDaemon()
        let worker = try connect(daemon)
        let parked = try connect(daemon)
        let probe = try connect(daemon)
        let long = 60_000

        // Completed: the last node finishes while someone waits for more.
        var taskID = try registerTask(worker, nodes: [nodeDef(itUUID())])
        var held = try acquire(worker, taskID)
        var id = try post(parked, "AcquireNextNode", ["task_id": taskID, "wait_ms": long])
        try confirmParked(parked, probe: probe, "waiting on a task whose only node is running")
        _ = try complete(worker, taskID, held, result: [:])
        XCTAssertTrue(try answer(parked, id: id, timeout: 5).isNull, "task COMPLETED")

        // Failed: FailNode leaves nothing that can run.
        let a = itUUID()
        taskID = try registerTask(worker, nodes: [nodeDef(a), nodeDef(itUUID(), [a])])
        held = try acquire(worker, taskID)
        id = try post(parked, "AcquireNextNode", ["task_id": taskID, "wait_ms": long])
        try confirmParked(parked, probe: probe, "waiting on a task with a dependency running")
        _ = try worker.call("FailNode", ["task_id": taskID, "node_id": a, "lease_id": held["lease_id"].string!,
                                         "error_payload": "no"])
        XCTAssertTrue(try answer(parked, id: id, timeout: 5).isNull, "task FAILED")

        // Cancelled, then deleted (another waiter, on a task made finished by the cancel).
        taskID = try registerTask(worker, nodes: [nodeDef(itUUID())])
        _ = try acquire(worker, taskID)
        id = try post(parked, "AcquireNextNode", ["task_id": taskID, "wait_ms": long])
        try confirmParked(parked, probe: probe, "waiting before a cancel")
        _ = try worker.call("CancelTask", ["task_id": taskID])
        XCTAssertTrue(try answer(parked, id: id, timeout: 5).isNull, "task CANCELLED")
        XCTAssertEqual(try taskStatus(worker, taskID)["task"]["status"].string, "CANCELLED")

        // Deleted: one may park on a finished task (AddNodes could revive it); deleting it ends that.
        taskID = try registerTask(worker, nodes: [nodeDef(itUUID())])
        _ = try complete(worker, taskID, try acquire(worker, taskID), result: [:])
        id = try post(parked, "AcquireNextNode", ["task_id": taskID, "wait_ms": long])
        try confirmParked(parked, probe: probe, "waiting on a finished task")
        _ = try worker.call("DeleteTask", ["task_id": taskID])
        XCTAssertTrue(try answer(parked, id: id, timeout: 5).isNull, "task deleted")
    }
}
