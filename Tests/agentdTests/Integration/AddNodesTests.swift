// Over the socket: AddNodes (growing a live DAG, validation, waking parked acquirers,
// a large batch in one request).

import XCTest
import Foundation

final class AddNodesTests: FeatureTestCase {

    func testAddNodesToLiveTask() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let parked = try connect(daemon)
        let probe = try connect(daemon)
        let a = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(a)])
        _ = try complete(client, taskID, try acquire(client, taskID), result: ["a": 1])
        XCTAssertEqual(try taskStatus(client, taskID)["task"]["status"].string, "COMPLETED")

        let parkedID = try post(parked, "AcquireNextNode", ["task_id": taskID, "lease_owner": "parked", "wait_ms": 10_000])
        try confirmParked(parked, probe: probe, "acquire on a task with everything done")

        // d depends on c, which comes later in the batch; c depends on b; b on the completed a.
        let b = itUUID(), c = itUUID(), d = itUUID()
        let added = try client.call("AddNodes", ["task_id": taskID, "nodes": [
            nodeDef(b, [a], maxAttempts: 3), nodeDef(d, [a, c]), nodeDef(c, [b]),
            ["dependencies": [a]] as [String: Any],
        ]])
        let ids = try XCTUnwrap(added["node_ids"].array?.compactMap { $0.string }, "\(added)")
        XCTAssertEqual(ids.count, 4)
        XCTAssertEqual(Array(ids.prefix(3)), [b, d, c], "node_ids in the given order")
        let generated = ids.count == 4 ? ids[3] : ""
        XCTAssertEqual(generated.count, 36, "a generated uuid: \(generated)")
        XCTAssertEqual(generated, generated.lowercased())

        let woken = try answer(parked, id: parkedID, timeout: 5)
        XCTAssertEqual(woken["node_id"].string, b, "the new runnable node wakes the parked acquirer")
        XCTAssertEqual(woken["context"]["completed_dependencies"][0]["node_id"].string, a)
        assertJSON(woken["context"]["completed_dependencies"][0]["result_payload"], #"{"a":1}"#)

        let status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]["status"].string, "ACTIVE")
        XCTAssertEqual(status["nodes"].array?.compactMap { $0["id"].string }, [a, b, d, c, generated], "registration order")
        XCTAssertEqual(counts(status), ["COMPLETED": 1, "RUNNING": 1, "PENDING": 3])
        XCTAssertEqual(node(status, b)["max_attempts"].int, 3)
        XCTAssertEqual(node(status, d)["dependencies"].array?.compactMap { $0.string }, [a, c])

        // The generated one is runnable next (registration order), then c after b.
        let next = try acquire(client, taskID)
        XCTAssertEqual(next["node_id"].string, generated)
        XCTAssertTrue(try client.call("AcquireNextNode", ["task_id": taskID]).isNull)
        _ = try complete(parked, taskID, woken, result: [:] as [String: Any])
        XCTAssertEqual(try acquire(client, taskID)["node_id"].string, c)
    }

    func testAddNodesValidation() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let a = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(a)])
        let x = itUUID(), y = itUUID(), z = itUUID(), ghost = itUUID()

        func refuse(_ nodes: [[String: Any]], _ message: String? = nil, prefix: String? = nil,
                    file: StaticString = #filePath, line: UInt = #line) throws {
            try expectReason(client, "AddNodes", ["task_id": taskID, "nodes": nodes], reason: "INVALID_DAG",
                             message: message, prefix: prefix, file: file, line: line)
        }
        try refuse([nodeDef(a)], "invalid state: duplicate node id: \(a)")
        try refuse([nodeDef(x), nodeDef(x)], "invalid state: duplicate node id: \(x)")
        try refuse([nodeDef(x, [ghost])], "invalid state: node \(x) depends on unknown node \(ghost)")
        try refuse([nodeDef(x, [x])], "invalid state: node \(x) cannot depend on itself")
        let cycle = try expectReason(client, "AddNodes", ["task_id": taskID, "nodes": [nodeDef(x, [a, z]), nodeDef(y, [x]), nodeDef(z, [y])]],
                                     reason: "INVALID_DAG", prefix: "invalid state: cycle detected at node ")
        let named = String((cycle["error"]["message"].string ?? "").dropFirst("invalid state: cycle detected at node ".count))
        XCTAssertTrue([x, y, z].contains(named), "the cycle message names a node of the cycle: \(cycle)")

        // The same checks as RegisterTask, with the same messages.
        try expectReason(client, "RegisterTask", ["goal": "g", "initial_nodes": [nodeDef(x, [ghost])]], reason: "INVALID_DAG",
                         message: "invalid state: node \(x) depends on unknown node \(ghost)")

        // A node of another task is unknown here.
        let otherNode = itUUID()
        _ = try registerTask(client, nodes: [nodeDef(otherNode)])
        try refuse([nodeDef(x, [otherNode])], "invalid state: node \(x) depends on unknown node \(otherNode)")

        // Nothing of a refused batch was added.
        let status = try taskStatus(client, taskID)
        XCTAssertEqual(status["nodes"].array?.compactMap { $0["id"].string }, [a])

        try expectReason(client, "AddNodes", ["task_id": itUUID().uppercased(), "nodes": [nodeDef(x)]], reason: "TASK_NOT_FOUND",
                         prefix: "task not found: ")
        try expectReason(client, "AddNodes", ["task_id": taskID], code: -32602, reason: "INVALID_PARAMS", prefix: "invalid params: ")
        try expectReason(client, "AddNodes", ["task_id": taskID, "nodes": [["max_attempts": 0]]], code: -32602,
                         reason: "INVALID_PARAMS", prefix: "invalid params: ")

        // An empty batch is fine.
        assertJSON(try client.call("AddNodes", ["task_id": taskID, "nodes": [] as [Any]]), #"{"node_ids":[]}"#)
    }

    /// 20,000 nodes in one AddNodes line (under the 1 MiB line limit): a chain with ids, a fan
    /// on an existing node, and free nodes with generated ids.
    func testLargeAddNodes() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let root = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(root)])

        var nodes: [[String: Any]] = []
        var previous = root
        for _ in 0..<3_000 {
            let id = itUUID()
            nodes.append(["id": id, "dependencies": [previous]])
            previous = id
        }
        for _ in 0..<8_000 { nodes.append(["dependencies": [root]]) }
        for _ in 0..<9_000 { nodes.append([:]) }
        let params: [String: Any] = ["task_id": taskID, "nodes": nodes]
        let line = ITLineClient.requestLine(id: 1, method: "AddNodes", params: params)
        XCTAssertLessThan(line.utf8.count, 1_048_575, "the request must fit one line")

        let added = try client.call("AddNodes", params)
        let ids = try XCTUnwrap(added["node_ids"].array, "node_ids")
        XCTAssertEqual(ids.count, 20_000)
        XCTAssertEqual(ids.first?.string, nodes[0]["id"] as? String)
        XCTAssertEqual(ids[2_999].string, previous)
        XCTAssertEqual(Set(ids.compactMap { $0.string }).count, 20_000, "distinct ids")

        // A 6.6 MB answer: read on its own connection with a fast reader.
        let status = try ITJSON.parse(try bigCall(daemon, "TaskStatus", ["task_id": taskID]))["result"]
        XCTAssertEqual(counts(status), ["PENDING": 20_001])
        XCTAssertEqual(status["nodes"].count, 20_001)
        XCTAssertEqual(status["nodes"][1]["id"].string, nodes[0]["id"] as? String)
        XCTAssertEqual(status["nodes"][20_000]["id"].string, ids[19_999].string)
        let listed = try client.call("ListTasks", [:] as [String: Any])
        assertJSON(listed["tasks"][0]["counts"], #"{"PENDING":20001}"#)

        // Runnable in registration order: root; then (the chain and the fan wait for root)
        // the first free node, ids[11_000].
        XCTAssertEqual(try acquire(client, taskID)["node_id"].string, root)
        XCTAssertEqual(try acquire(client, taskID)["node_id"].string, ids[11_000].string)
    }
}
