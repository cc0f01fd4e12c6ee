// Over the socket: AddNodes (growing a live DAG, validation, waking parked acquirers,
// a large batch in one request).

import XCTest
import Foundation
import AgentdClient

final class AddNodesTests: FeatureTestCase {

    func testAddNodesToLiveTask() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let parked = try openConnection(daemon)
        let probe = try openConnection(daemon)
        let a = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(a)])
        try complete(client, taskID, try acquire(client, taskID), result: ["a": 1])
        XCTAssertEqual(try taskStatus(client, taskID)["task"]?["status"]?.stringValue, "COMPLETED")

        let waiting = post(parked, "AcquireNextNode", ["task_id": .string(taskID), "lease_owner": "parked", "wait_ms": 10_000])
        try confirmParked(waiting, probe: probe, "acquire on a task with everything done")

        // d depends on c, which comes later in the batch; c depends on b; b on the completed a.
        let b = itUUID(), c = itUUID(), d = itUUID()
        let added = try client.call("AddNodes", ["task_id": .string(taskID), "nodes": [
            nodeSpec(b, [a], maxAttempts: 3), nodeSpec(d, [a, c]), nodeSpec(c, [b]),
            ["dependencies": [.string(a)]],
        ]])
        let ids = try XCTUnwrap(added["node_ids"]?.arrayValue?.compactMap { $0.stringValue }, "\(added)")
        XCTAssertEqual(ids.count, 4)
        XCTAssertEqual(Array(ids.prefix(3)), [b, d, c], "node_ids in the given order")
        let generated = ids.count == 4 ? ids[3] : ""
        XCTAssertEqual(generated.count, 36, "a generated uuid: \(generated)")
        XCTAssertEqual(generated, generated.lowercased())

        let woken = try answer(waiting, timeout: 5)
        XCTAssertEqual(woken["node_id"]?.stringValue, b, "the new runnable node wakes the parked acquirer")
        XCTAssertEqual(woken["context"]?["completed_dependencies"]?[0]?["node_id"]?.stringValue, a)
        assertJSON(woken["context"]?["completed_dependencies"]?[0]?["result_payload"], #"{"a":1}"#)

        let status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "ACTIVE")
        XCTAssertEqual(status["nodes"]?.arrayValue?.compactMap { $0["id"]?.stringValue }, [a, b, d, c, generated], "registration order")
        XCTAssertEqual(counts(status), ["COMPLETED": 1, "RUNNING": 1, "PENDING": 3])
        XCTAssertEqual(node(status, b)?["max_attempts"]?.int, 3)
        XCTAssertEqual(node(status, d)?["dependencies"]?.arrayValue?.compactMap { $0.stringValue }, [a, c])

        // The generated one is runnable next (registration order), then c after b.
        let next = try acquire(client, taskID)
        XCTAssertEqual(next["node_id"]?.stringValue, generated)
        XCTAssertTrue(try client.call("AcquireNextNode", ["task_id": .string(taskID)]).isNull)
        try complete(parked, taskID, woken, result: [:])
        XCTAssertEqual(try acquire(client, taskID)["node_id"]?.stringValue, c)
    }

    func testAddNodesValidation() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let a = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(a)])
        let x = itUUID(), y = itUUID(), z = itUUID(), ghost = itUUID()

        func refuse(_ nodes: [JSONValue], _ message: String? = nil, prefix: String? = nil,
                    file: StaticString = #filePath, line: UInt = #line) {
            expectReason(client, "AddNodes", ["task_id": .string(taskID), "nodes": .array(nodes)], reason: "INVALID_DAG",
                         message: message, prefix: prefix, file: file, line: line)
        }
        refuse([nodeSpec(a)], "invalid state: duplicate node id: \(a)")
        refuse([nodeSpec(x), nodeSpec(x)], "invalid state: duplicate node id: \(x)")
        refuse([nodeSpec(x, [ghost])], "invalid state: node \(x) depends on unknown node \(ghost)")
        refuse([nodeSpec(x, [x])], "invalid state: node \(x) cannot depend on itself")
        let cycle = expectReason(client, "AddNodes", ["task_id": .string(taskID),
                                                      "nodes": [nodeSpec(x, [a, z]), nodeSpec(y, [x]), nodeSpec(z, [y])]],
                                 reason: "INVALID_DAG", prefix: "invalid state: cycle detected at node ")
        let named = String((cycle?.message ?? "").dropFirst("invalid state: cycle detected at node ".count))
        XCTAssertTrue([x, y, z].contains(named), "the cycle message names a node of the cycle: \(cycle.map { "\($0)" } ?? "none")")

        // The same checks as RegisterTask, with the same messages.
        expectReason(client, "RegisterTask", ["goal": "g", "initial_nodes": [nodeSpec(x, [ghost])]], reason: "INVALID_DAG",
                     message: "invalid state: node \(x) depends on unknown node \(ghost)")

        // A node of another task is unknown here.
        let otherNode = itUUID()
        _ = try registerTask(client, nodes: [nodeSpec(otherNode)])
        refuse([nodeSpec(x, [otherNode])], "invalid state: node \(x) depends on unknown node \(otherNode)")

        // Nothing of a refused batch was added.
        let status = try taskStatus(client, taskID)
        XCTAssertEqual(status["nodes"]?.arrayValue?.compactMap { $0["id"]?.stringValue }, [a])

        expectReason(client, "AddNodes", ["task_id": .string(itUUID().uppercased()), "nodes": [nodeSpec(x)]],
                     reason: "TASK_NOT_FOUND", prefix: "task not found: ")
        expectReason(client, "AddNodes", ["task_id": .string(taskID)], code: -32602, reason: "INVALID_PARAMS", prefix: "invalid params: ")
        expectReason(client, "AddNodes", ["task_id": .string(taskID), "nodes": [["max_attempts": 0]]], code: -32602,
                     reason: "INVALID_PARAMS", prefix: "invalid params: ")

        // An empty batch is fine.
        assertJSON(try client.call("AddNodes", ["task_id": .string(taskID), "nodes": []]), #"{"node_ids":[]}"#)
    }

    /// 20,000 nodes in one AddNodes line (under the 1 MiB line limit): a chain with ids, a fan
    /// on an existing node, and free nodes with generated ids.
    func testLargeAddNodes() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let root = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(root)])

        var nodes: [JSONValue] = []
        var chain: [String] = []
        var previous = root
        for _ in 0..<3_000 {
            let id = itUUID()
            nodes.append(["id": .string(id), "dependencies": [.string(previous)]])
            chain.append(id)
            previous = id
        }
        for _ in 0..<8_000 { nodes.append(["dependencies": [.string(root)]]) }
        for _ in 0..<9_000 { nodes.append([:]) }
        let params: JSONValue = ["task_id": .string(taskID), "nodes": .array(nodes)]
        // The line AgentdConnection writes: {"id":N,"method":"AddNodes","params":...}.
        let line = #"{"id":1000000,"method":"AddNodes","params":"# + params.compactText + "}"
        XCTAssertLessThan(line.utf8.count, 1_048_575, "the request must fit one line")

        let added = try client.call("AddNodes", params, timeout: 20)
        let ids = try XCTUnwrap(added["node_ids"]?.arrayValue, "node_ids")
        XCTAssertEqual(ids.count, 20_000)
        guard ids.count == 20_000 else { return }
        XCTAssertEqual(ids.first?.stringValue, chain[0])
        XCTAssertEqual(ids[2_999].stringValue, previous)
        XCTAssertEqual(Set(ids.compactMap { $0.stringValue }).count, 20_000, "distinct ids")

        // A 6.6 MB answer: read on its own connection with a fast raw reader (AgentdConnection
        // rescans its buffer for the newline on every read and takes about ten times as long
        // in a debug build).
        let status = try JSONValue.parse(try bigCall(daemon, "TaskStatus", ["task_id": taskID]))["result"] ?? .null
        XCTAssertEqual(counts(status), ["PENDING": 20_001])
        XCTAssertEqual(status["nodes"]?.arrayValue?.count, 20_001)
        XCTAssertEqual(status["nodes"]?[1]?["id"]?.stringValue, chain[0])
        XCTAssertEqual(status["nodes"]?[20_000]?["id"]?.stringValue, ids[19_999].stringValue)
        let listed = try client.call("ListTasks", [:])
        assertJSON(listed["tasks"]?[0]?["counts"], #"{"PENDING":20001}"#)

        // Runnable in registration order: root; then (the chain and the fan wait for root)
        // the first free node, ids[11_000].
        XCTAssertEqual(try acquire(client, taskID)["node_id"]?.stringValue, root)
        XCTAssertEqual(try acquire(client, taskID)["node_id"]?.stringValue, ids[11_000].stringValue)
    }
}
