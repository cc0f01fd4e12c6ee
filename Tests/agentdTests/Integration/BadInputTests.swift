// Integration: bad input gets the right error and never costs the daemon its state.

import XCTest
import Foundation

final class BadInputTests: IntegrationTestCase {

    /// Lines that are not a request: -32700 without id; the connection stays usable.
    func testParseErrors() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let (taskID, baseline) = try baselineTask(client)

        let lines: [(String, String)] = [
            ("not json", "not JSON"),
            ("{\"id\":1,\"method\":\"Health\"", "truncated object"),
            ("[1]", "an array"),
            ("\"x\"", "a string"),
            ("42", "a number"),
            ("null", "null"),
            ("{\"id\":5}", "no method"),
            ("{\"id\":6,\"method\":7}", "numeric method"),
            ("{\"id\":7,\"method\":null}", "null method"),
            ("{\"id\":8,\"method\":[\"Health\"]}", "array method"),
            ("{\"id\":9,\"method\":\"Health\"} trailing", "trailing garbage"),
        ]
        for (line, what) in lines {
            try client.sendLine(line)
            let response = try client.readResponse()
            assertError(response, code: -32700, prefix: "parse error: ", idCanonical: nil, what)
        }

        // Invalid UTF-8 inside a string: -32700, and the same connection keeps serving.
        try client.send([UInt8]("{\"id\":10,\"method\":\"Health\",\"params\":{\"x\":\"".utf8) + [0xff, 0xfe] + [UInt8]("\"}}\n".utf8))
        assertError(try client.readResponse(), code: -32700, prefix: "parse error: ", idCanonical: nil, "invalid UTF-8")
        try client.send([UInt8]("{\"id\":11,\"method\":\"He".utf8) + [0xc3] + [UInt8]("llo\"}\n".utf8))
        assertError(try client.readResponse(), code: -32700, prefix: "parse error: ", idCanonical: nil, "invalid UTF-8 in method")
        XCTAssertEqual(try client.call("Health")["status"].string, "ok", "the connection stays open after bad lines")

        // Unknown method: -32601 with the id echoed.
        try client.sendLine("{\"id\":\"u-1\",\"method\":\"Nope\",\"params\":{}}")
        assertError(try client.readResponse(), code: -32601, message: "unknown method: Nope", idCanonical: "\"u-1\"")
        try client.sendLine("{\"method\":\"Nope\"}")
        assertError(try client.readResponse(), code: -32601, message: "unknown method: Nope", idCanonical: nil)

        try assertIntact(client, taskID, baseline)
    }

    /// Every param of every method, given the wrong type or left out: -32602 naming it.
    func testInvalidParams() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let (taskID, baseline) = try baselineTask(client)
        let nodeID = baseline["nodes"][0]["id"].string!
        let lease = itUUID()

        let cases: [(String, [String: Any]?, String)] = [
            ("RegisterTask", ["goal": 5], "goal"),
            ("RegisterTask", ["goal": "g", "initial_nodes": [:] as [String: Any]], "initial_nodes"),
            ("RegisterTask", ["goal": "g", "initial_nodes": [["dependencies": "x"]]], "dependencies"),
            ("RegisterTask", ["goal": "g", "initial_nodes": [["id": "not-a-uuid"]]], "id"),
            ("RegisterTask", ["goal": "g", "initial_nodes": [["dependencies": ["not-a-uuid"]]]], "dependencies"),
            ("RegisterTask", ["goal": "g", "initial_nodes": [5]], "initial_nodes"),
            ("RegisterTask", [:], "goal"),
            ("RegisterTask", nil, "goal"),
            ("AcquireNextNode", ["task_id": 7], "task_id"),
            ("AcquireNextNode", ["task_id": "not-a-uuid"], "task_id"),
            ("AcquireNextNode", ["task_id": taskID, "lease_owner": 3], "lease_owner"),
            ("AcquireNextNode", [:], "task_id"),
            ("CommitEvent", ["task_id": taskID, "node_id": nodeID, "lease_id": "zzz", "payload": [:] as [String: Any]], "lease_id"),
            ("CommitEvent", ["task_id": taskID, "node_id": nodeID, "lease_id": lease, "action_type": 5, "payload": [:] as [String: Any]], "action_type"),
            ("CommitEvent", ["task_id": taskID, "node_id": 1, "payload": [:] as [String: Any]], "node_id"),
            ("CommitEvent", ["node_id": nodeID, "payload": [:] as [String: Any]], "task_id"),
            ("HeartbeatNode", ["task_id": taskID, "node_id": 5, "lease_id": lease], "node_id"),
            ("HeartbeatNode", ["task_id": taskID, "node_id": nodeID, "lease_id": "zzz"], "lease_id"),
            ("HeartbeatNode", ["task_id": taskID, "node_id": nodeID], "lease_id"),
            ("CompleteNode", ["task_id": taskID, "node_id": nodeID, "lease_id": "zzz", "result_payload": [:] as [String: Any]], "lease_id"),
            ("CompleteNode", ["task_id": taskID, "lease_id": lease, "result_payload": [:] as [String: Any]], "node_id"),
            ("CompleteNode", ["task_id": [taskID], "node_id": nodeID, "lease_id": lease, "result_payload": [:] as [String: Any]], "task_id"),
            ("FailNode", ["task_id": "x", "node_id": nodeID, "lease_id": lease, "error_payload": [:] as [String: Any]], "task_id"),
            ("FailNode", ["task_id": taskID, "node_id": nodeID, "lease_id": 12, "error_payload": [:] as [String: Any]], "lease_id"),
            ("TaskStatus", ["task_id": true], "task_id"),
            ("TaskStatus", [:], "task_id"),
            ("TaskStatus", nil, "task_id"),
            ("AcquireResourceLock", ["resource_key": NSNull()], "resource_key"),
            ("AcquireResourceLock", [:], "resource_key"),
            ("AcquireResourceLock", ["resource_key": "k", "ttl_secs": "x"], "ttl_secs"),
            ("AcquireResourceLock", ["resource_key": "k", "owner": 5], "owner"),
            ("AcquireResourceLock", ["resource_key": "k", "provider": 5], "provider"),
            ("AcquireResourceLock", ["resource_key": "k", "task_id": "nope"], "task_id"),
            ("HeartbeatResourceLock", ["resource_key": "k", "lease_id": "zzz"], "lease_id"),
            ("HeartbeatResourceLock", ["resource_key": "k"], "lease_id"),
            ("HeartbeatResourceLock", ["resource_key": "k", "lease_id": lease, "ttl_secs": "x"], "ttl_secs"),
            ("ReleaseResourceLock", ["resource_key": 5, "lease_id": lease], "resource_key"),
            ("ReleaseResourceLock", ["lease_id": lease], "resource_key"),
        ]
        for (method, params, field) in cases {
            try expectError(client, method, params, code: -32602, prefix: "invalid params: ", contains: [field])
        }

        try assertIntact(client, taskID, baseline)
        XCTAssertEqual(try client.call("ListResourceLocks")["locks"].count, 0, "no lock taken by a refused request")
        XCTAssertEqual(try client.call("Metrics")["database"]["total_tasks"].int, 1, "no task registered by a refused request")
    }

    /// Requests the state refuses: unknown ids, bad DAGs, transitions from the wrong status.
    func testStateErrors() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let (taskID, baseline) = try baselineTask(client)
        let nodeID = baseline["nodes"][0]["id"].string!

        let unknownTask = itUUID(), unknownNode = itUUID()
        try expectError(client, "TaskStatus", ["task_id": unknownTask], code: -32000, message: "task not found: \(unknownTask)")
        try expectError(client, "AcquireNextNode", ["task_id": unknownTask], code: -32000, message: "task not found: \(unknownTask)")
        try expectError(client, "HeartbeatNode", ["task_id": taskID, "node_id": unknownNode, "lease_id": itUUID()],
                        code: -32000, message: "node not found: \(unknownNode) for task \(taskID)")
        try expectError(client, "CompleteNode", ["task_id": taskID, "node_id": unknownNode, "lease_id": itUUID(), "result_payload": 1],
                        code: -32000, message: "node not found: \(unknownNode) for task \(taskID)")
        try expectError(client, "CommitEvent", ["task_id": taskID, "node_id": unknownNode, "payload": 1],
                        code: -32000, message: "node not found: \(unknownNode) for task \(taskID)")

        // CommitEvent on a RUNNING node needs its lease.
        try expectError(client, "CommitEvent", ["task_id": taskID, "node_id": nodeID, "payload": ["no": "lease"]],
                        code: -32000, message: "invalid state: node \(nodeID) for task \(taskID) requires the current RUNNING lease")

        // DAG validation.
        let a = itUUID(), b = itUUID(), z = itUUID()
        try expectError(client, "RegisterTask", ["goal": "dup", "initial_nodes": [nodeDef(a), nodeDef(a)]],
                        code: -32000, message: "invalid state: duplicate node id: \(a)")
        try expectError(client, "RegisterTask", ["goal": "self", "initial_nodes": [nodeDef(a, [a])]],
                        code: -32000, message: "invalid state: node \(a) cannot depend on itself")
        try expectError(client, "RegisterTask", ["goal": "unknown", "initial_nodes": [nodeDef(a, [z])]],
                        code: -32000, message: "invalid state: node \(a) depends on unknown node \(z)")
        let cycle = try expectError(client, "RegisterTask", ["goal": "cycle", "initial_nodes": [nodeDef(a, [b]), nodeDef(b, [a])]],
                                    code: -32000, prefix: "invalid state: cycle detected at node ")
        let cycleAt = String((cycle["error"]["message"].string ?? "").dropFirst("invalid state: cycle detected at node ".count))
        XCTAssertTrue([a, b].contains(cycleAt), "the cycle is reported at one of its nodes: \(cycle)")
        let c = itUUID()
        try expectError(client, "RegisterTask", ["goal": "long cycle", "initial_nodes": [nodeDef(a, [c]), nodeDef(b, [a]), nodeDef(c, [b])]],
                        code: -32000, prefix: "invalid state: cycle detected at node ")

        // Transitions from the wrong status.
        let done = itUUID(), pending = itUUID()
        let other = try registerTask(client, nodes: [nodeDef(done), nodeDef(pending, [done])])
        let acquired = try acquire(client, other)
        let lease = acquired["lease_id"].string!
        _ = try client.call("CompleteNode", ["task_id": other, "node_id": done, "lease_id": lease, "result_payload": ["r": 1]])
        try expectError(client, "CompleteNode", ["task_id": other, "node_id": done, "lease_id": lease, "result_payload": ["r": 2]],
                        code: -32000, message: "invalid state: node \(done) cannot transition from COMPLETED to COMPLETED")
        try expectError(client, "FailNode", ["task_id": other, "node_id": done, "lease_id": lease, "error_payload": ["e": 1]],
                        code: -32000, message: "invalid state: node \(done) cannot transition from COMPLETED to FAILED")
        try expectError(client, "FailNode", ["task_id": other, "node_id": pending, "lease_id": itUUID(), "error_payload": ["e": 1]],
                        code: -32000, message: "invalid state: node \(pending) cannot transition from PENDING to FAILED")
        try expectError(client, "HeartbeatNode", ["task_id": other, "node_id": pending, "lease_id": itUUID()],
                        code: -32000, message: "node \(pending) for task \(other) is not RUNNING")
        // A node of one task addressed through another task is not found.
        try expectError(client, "HeartbeatNode", ["task_id": taskID, "node_id": pending, "lease_id": itUUID()],
                        code: -32000, message: "node not found: \(pending) for task \(taskID)")
        let status = try taskStatus(client, other)
        assertJSON(status["counts"], #"{"COMPLETED":1,"PENDING":1}"#)
        assertJSON(status["nodes"][0]["result_payload"], #"{"r":1}"#)

        try assertIntact(client, taskID, baseline)
        XCTAssertEqual(try client.call("Metrics")["database"]["total_tasks"].int, 2, "refused RegisterTasks left no task")
    }

    /// UUIDs in any case are accepted and answered in lower case; snake_case method names
    /// and the TaskStatus aliases work.
    func testUUIDCaseAndMethodAliases() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let first = itUUID(), second = itUUID()
        let registered = try client.call("register_task", ["goal": "aliases", "initial_nodes": [
            ["id": first.uppercased(), "dependencies": [] as [String], "payload_schema": [:] as [String: Any]],
            ["id": second.uppercased(), "dependencies": [first.uppercased()]],
        ]])
        let taskID = try XCTUnwrap(registered["task_id"].string)
        XCTAssertEqual(taskID, taskID.lowercased())
        let upperTask = taskID.uppercased()

        let status = try client.call("TaskStatus", ["task_id": upperTask])
        XCTAssertEqual(status["task"]["id"].string, taskID)
        XCTAssertEqual((status["nodes"].array ?? []).map { $0["id"].string ?? "?" }, [first, second])
        assertJSON(status["nodes"][1]["dependencies"], itJSONText([first]))
        for alias in ["task_status", "GetTaskStatus", "get_task_status"] {
            XCTAssertEqual(try client.call(alias, ["task_id": taskID]).canonical, status.canonical, alias)
        }

        let acquired = try client.call("acquire_next_node", ["task_id": upperTask, "lease_owner": "w"])
        XCTAssertEqual(acquired["task_id"].string, taskID)
        XCTAssertEqual(acquired["node_id"].string, first)
        let lease = try XCTUnwrap(acquired["lease_id"].string)
        XCTAssertEqual(lease, lease.lowercased())
        assertJSON(try client.call("heartbeat_node", ["task_id": upperTask, "node_id": first.uppercased(), "lease_id": lease.uppercased()]), #"{"ok":true}"#)
        XCTAssertNotNil(try client.call("commit_event", ["task_id": upperTask, "node_id": first.uppercased(),
                                                          "lease_id": lease.uppercased(), "payload": ["x": 1]])["event_id"].string)
        XCTAssertNotNil(try client.call("complete_node", ["task_id": upperTask, "node_id": first.uppercased(),
                                                           "lease_id": lease.uppercased(), "result_payload": ["x": 2]])["event_id"].string)
        let next = try client.call("acquire_next_node", ["task_id": taskID])
        XCTAssertEqual(next["node_id"].string, second)
        XCTAssertEqual(next["context"]["completed_dependencies"][0]["node_id"].string, first)
        XCTAssertNotNil(try client.call("fail_node", ["task_id": taskID, "node_id": second, "lease_id": next["lease_id"].string!,
                                                       "error_payload": ["e": 1]])["event_id"].string)

        XCTAssertEqual(try client.call("health")["status"].string, "ok")
        do {
            XCTAssertEqual(try client.call("describe_interface")["protocol"].string, "agentd-jsonl-v1")
        } catch {
            XCTFail("describe_interface: \(error)")
        }
        XCTAssertNotNil(try client.call("metrics")["database"].object)
        let lock = try client.call("acquire_resource_lock", ["resource_key": "k", "owner": "o", "task_id": upperTask])
        XCTAssertEqual(lock["task_id"].string, taskID)
        let lockLease = try XCTUnwrap(lock["lease_id"].string)
        assertJSON(try client.call("heartbeat_resource_lock", ["resource_key": "k", "lease_id": lockLease.uppercased()]), #"{"ok":true}"#)
        XCTAssertEqual(try client.call("list_resource_locks")["locks"].count, 1)
        assertJSON(try client.call("release_resource_lock", ["resource_key": "k", "lease_id": lockLease.uppercased()]), #"{"ok":true}"#)
        XCTAssertEqual(try client.call("list_resource_locks")["locks"].count, 0)

        // Upper-case unknown ids are reported in lower case.
        let unknown = itUUID()
        try expectError(client, "TaskStatus", ["task_id": unknown.uppercased()], code: -32000, message: "task not found: \(unknown)")
    }

    // MARK: Helpers

    /// A task with two nodes, one of them RUNNING, whose TaskStatus must not change.
    private func baselineTask(_ client: ITLineClient) throws -> (String, ITJSON) {
        let n1 = itUUID(), n2 = itUUID()
        let taskID = try registerTask(client, goal: "baseline", context: ["keep": true], nodes: [nodeDef(n1), nodeDef(n2, [n1])])
        _ = try acquire(client, taskID, owner: "baseline-worker")
        return (taskID, try taskStatus(client, taskID))
    }

    private func assertIntact(_ client: ITLineClient, _ taskID: String, _ baseline: ITJSON,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try client.call("Health")["status"].string, "ok", file: file, line: line)
        XCTAssertEqual(try taskStatus(client, taskID).canonical, baseline.canonical, "state unchanged by bad input", file: file, line: line)
    }
}
