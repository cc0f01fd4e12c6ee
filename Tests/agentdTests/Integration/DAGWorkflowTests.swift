// Integration: the task DAG as the original's clients drive it.

import XCTest
import Foundation
import AgentdClient

final class DAGWorkflowTests: IntegrationTestCase {

    /// The original's multi-worker DAG: two workers take the two roots, the join waits for
    /// both and sees their results; Metrics and TaskStatus account for everything.
    func testMultiWorkerDAG() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)

        // A broken DescribeInterface must not hide the rest of the scenario.
        do {
            let describe = try client.call("DescribeInterface")
            XCTAssertEqual(describe["protocol"]?.stringValue, "agentd-jsonl-v1")
            let methods = Set((describe["methods"]?.arrayValue ?? []).compactMap { $0["method"]?.stringValue })
            XCTAssertTrue(methods.isSuperset(of: ["Metrics", "AcquireResourceLock"]), "DescribeInterface methods: \(methods.sorted())")
            for entry in describe["methods"]?.arrayValue ?? [] {
                assertHasKeys(entry, ["method", "params", "result"], "DescribeInterface method entry")
            }
        } catch {
            XCTFail("DescribeInterface: \(error)")
        }

        let a = itUUID(), b = itUUID(), join = itUUID()
        let taskID = try registerTask(client, goal: "multi-worker DAG", context: ["repo": "agentd"], nodes: [
            nodeSpec(a, schema: ["agent": "a"]),
            nodeSpec(b, schema: ["agent": "b"]),
            nodeSpec(join, [a, b], schema: ["agent": "join"]),
        ])

        let first = try acquire(client, taskID, owner: "worker-a")
        let second = try acquire(client, taskID, owner: "worker-b")
        for (acquired, owner) in [(first, "worker-a"), (second, "worker-b")] {
            assertHasKeys(acquired, ["task_id", "node_id", "lease_id", "lease_owner", "lease_expires_at", "context"], "acquire")
            XCTAssertEqual(acquired["task_id"]?.stringValue, taskID)
            XCTAssertEqual(acquired["lease_owner"]?.stringValue, owner)
            XCTAssertNotNil(acquired["lease_expires_at"]?.int,
                            "lease_expires_at is unix seconds: \(acquired["lease_expires_at"].map { "\($0)" } ?? "<missing>")")
        }
        let firstNode = try XCTUnwrap(first["node_id"]?.stringValue)
        let secondNode = try XCTUnwrap(second["node_id"]?.stringValue)
        XCTAssertEqual(Set([firstNode, secondNode]), Set([a, b]), "the two roots go to the two workers")
        XCTAssertNotEqual(first["lease_id"]?.stringValue, second["lease_id"]?.stringValue)

        // AgentdConnection gives a result only for an answer with a "result" key and no
        // "error"; here that result must be JSON null.
        let third = try client.call("AcquireNextNode", ["task_id": .string(taskID), "lease_owner": "worker-c"])
        XCTAssertTrue(third.isNull, "nothing runnable: \(third)")

        var results: [String: JSONValue] = [:]
        for (acquired, worker) in [(first, "a"), (second, "b")] {
            let payload: JSONValue = ["worker": .string(worker), "files": [.string("src/\(worker).rs")], "n": worker == "a" ? 1 : 2]
            results[acquired["node_id"]!.stringValue!] = payload
            let done = try complete(client, taskID, acquired, result: payload)
            XCTAssertNotNil(done["event_id"]?.stringValue)
        }

        let joined = try acquire(client, taskID, owner: "worker-a")
        XCTAssertEqual(joined["node_id"]?.stringValue, join)
        let deps = joined["context"]?["completed_dependencies"]
        XCTAssertEqual(deps?.canonical, JSONValue.array([
            ["node_id": .string(a), "result_payload": results[a]!],
            ["node_id": .string(b), "result_payload": results[b]!],
        ]).canonical, "completed_dependencies in dependency order")
        try complete(client, taskID, joined, result: ["merged": true])

        let metrics = try client.call("Metrics")
        let database = metrics["database"]
        XCTAssertEqual(database?["total_tasks"]?.int, 1, "\(metrics)")
        XCTAssertEqual(database?["total_nodes"]?.int, 3, "\(metrics)")
        XCTAssertEqual(metrics["runtime"]?["completed_nodes"]?.int, 3, "\(metrics)")
        let schema = try XCTUnwrap(database?["schema_version"]?.int, "\(metrics)")
        XCTAssertEqual(schema, database?["latest_schema_version"]?.int)
        XCTAssertGreaterThanOrEqual(schema, 2)
        assertHasKeys(metrics, ["uptime_secs", "running_timeout_secs", "context_event_limit", "runtime", "database"], "Metrics")
        assertHasKeys(metrics["runtime"], ["registered_tasks", "acquire_attempts", "acquired_nodes",
            "acquisition_latency_micros_total", "average_acquisition_latency_micros", "committed_events",
            "heartbeats", "completed_nodes", "failed_nodes", "timeout_rollbacks", "acquired_resource_locks",
            "released_resource_locks"], "Metrics.runtime")
        assertHasKeys(database, ["schema_version", "latest_schema_version", "total_tasks", "total_nodes",
            "total_events", "active_resource_locks", "expired_resource_locks", "running_leases",
            "expired_running_leases", "node_status_counts"], "Metrics.database")

        let status = try taskStatus(client, taskID)
        assertJSON(status["counts"], #"{"COMPLETED":3}"#, "counts: only the statuses present")
        let task = status["task"]
        XCTAssertEqual(task?["id"]?.stringValue, taskID)
        XCTAssertEqual(task?["goal"]?.stringValue, "multi-worker DAG")
        assertJSON(task?["context"], #"{"repo":"agentd"}"#)
        XCTAssertTrue(itIsISOMillis(task?["created_at"]?.stringValue), "created_at \(task?["created_at"] ?? .null)")
        let nodes = try XCTUnwrap(status["nodes"]?.arrayValue)
        XCTAssertEqual(nodes.map { $0["id"]?.stringValue ?? "?" }, [a, b, join], "nodes in registration order")
        for node in nodes {
            assertHasKeys(node, Self.nodeKeys, "Node")
            XCTAssertEqual(node["task_id"]?.stringValue, taskID)
            XCTAssertEqual(node["status"]?.stringValue, "COMPLETED")
            for key in ["lease_id", "lease_owner", "lease_expires_at"] {
                XCTAssertEqual(node[key], .null, "\(key) must be null when not RUNNING: \(node)")
            }
            XCTAssertNotNil(node["updated_at"]?.int, "updated_at is unix seconds: \(node)")
        }
        guard nodes.count == 3 else { return }
        assertJSON(nodes[0]["payload_schema"], #"{"agent":"a"}"#)
        assertJSON(nodes[2]["payload_schema"], #"{"agent":"join"}"#)
        assertJSON(nodes[2]["dependencies"], JSONValue.array([.string(a), .string(b)]).compactText)
        assertJSON(nodes[0]["dependencies"], "[]")
        assertJSON(nodes[0]["result_payload"], results[a]!.compactText)
        assertJSON(nodes[2]["result_payload"], #"{"merged":true}"#)
    }

    /// client_test.py of the original, five calls on one connection, with the context the
    /// second acquire carries checked field by field.
    func testPythonClientFlowOnOneConnection() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let firstNode = itUUID(), secondNode = itUUID()

        let taskID = try registerTask(client, goal: "Demonstrate agentd node acquisition",
                                      context: ["source": "client_test.py"], nodes: [
            nodeSpec(firstNode, schema: ["type": "object"]),
            nodeSpec(secondNode, [firstNode], schema: ["type": "object"]),
        ])

        let acquired = try client.call("AcquireNextNode", ["task_id": .string(taskID)])
        XCTAssertEqual(acquired["node_id"]?.stringValue, firstNode)
        XCTAssertEqual(acquired["lease_owner"]?.stringValue, "anonymous", "default lease owner")
        let leaseID = try XCTUnwrap(acquired["lease_id"]?.stringValue)

        let committed = try client.call("CommitEvent", ["task_id": .string(taskID), "node_id": .string(firstNode),
                                                        "lease_id": .string(leaseID), "payload": ["message": "node started"]])
        let commitEventID = try XCTUnwrap(committed["event_id"]?.stringValue)

        let resultPayload: JSONValue = ["ok": true, "value": "first node complete"]
        let completed = try client.call("CompleteNode", ["task_id": .string(taskID), "node_id": .string(firstNode),
                                                         "lease_id": .string(leaseID), "result_payload": resultPayload])
        let completeEventID = try XCTUnwrap(completed["event_id"]?.stringValue)
        XCTAssertNotEqual(commitEventID, completeEventID)

        let next = try client.call("AcquireNextNode", ["task_id": .string(taskID)])
        XCTAssertEqual(next["node_id"]?.stringValue, secondNode)
        let context = try XCTUnwrap(next["context"], "\(next)")
        assertHasKeys(context, ["task", "node", "completed_dependencies", "event_journal_limit", "event_journal"], "context")
        assertJSON(context["completed_dependencies"],
                   JSONValue.array([["node_id": .string(firstNode), "result_payload": resultPayload]]).compactText)
        XCTAssertEqual(context["event_journal_limit"]?.int, 50, "default event journal limit")

        let journal = try XCTUnwrap(context["event_journal"]?.arrayValue, "\(context)")
        XCTAssertEqual(journal.map { $0["action_type"]?.stringValue ?? "?" }, ["COMMIT_EVENT", "COMPLETE_NODE"],
                       "journal oldest first: \(context["event_journal"] ?? .null)")
        if journal.count == 2 {
            XCTAssertEqual(journal[0]["id"]?.stringValue, commitEventID)
            assertJSON(journal[0]["payload"], #"{"message":"node started"}"#)
            XCTAssertEqual(journal[1]["id"]?.stringValue, completeEventID)
            assertJSON(journal[1]["payload"], JSONValue.object(JSONObject([("result", resultPayload)])).compactText)
            for event in journal {
                assertHasKeys(event, ["id", "task_id", "node_id", "action_type", "payload", "timestamp"], "event")
                XCTAssertEqual(event["task_id"]?.stringValue, taskID)
                XCTAssertEqual(event["node_id"]?.stringValue, firstNode)
                XCTAssertTrue(itIsISOMillis(event["timestamp"]?.stringValue), "timestamp \(event["timestamp"] ?? .null)")
            }
        }

        let task = context["task"]
        assertHasKeys(task, ["id", "goal", "context", "created_at"], "context.task")
        XCTAssertEqual(task?["id"]?.stringValue, taskID)
        XCTAssertEqual(task?["goal"]?.stringValue, "Demonstrate agentd node acquisition")
        assertJSON(task?["context"], #"{"source":"client_test.py"}"#)
        XCTAssertTrue(itIsISOMillis(task?["created_at"]?.stringValue))

        let node = context["node"]
        assertHasKeys(node, Self.nodeKeys, "context.node")
        XCTAssertEqual(node?["id"]?.stringValue, secondNode)
        XCTAssertEqual(node?["task_id"]?.stringValue, taskID)
        XCTAssertEqual(node?["status"]?.stringValue, "RUNNING")
        XCTAssertEqual(node?["lease_id"]?.stringValue, next["lease_id"]?.stringValue)
        XCTAssertEqual(node?["lease_owner"]?.stringValue, "anonymous")
        XCTAssertEqual(node?["lease_expires_at"]?.int, next["lease_expires_at"]?.int)
        XCTAssertNotNil(node?["acquired_at"]?.int)
        assertJSON(node?["dependencies"], JSONValue.array([.string(firstNode)]).compactText)
        assertJSON(node?["payload_schema"], #"{"type":"object"}"#)
        XCTAssertEqual(node?["result_payload"], .null)
    }

    /// FailNode journals FAIL_NODE with {"error": ...} and keeps the error as the node's
    /// result_payload; the alias `payload` works for CompleteNode and `event_payload` for
    /// CommitEvent; a custom action_type is kept.
    func testFailNodeAndPayloadAliases() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let n1 = itUUID(), n2 = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(n1), nodeSpec(n2)])

        let one = try acquire(client, taskID, owner: "w")
        let lease1 = JSONValue.string(one["lease_id"]!.stringValue!)
        _ = try client.call("CommitEvent", ["task_id": .string(taskID), "node_id": .string(n1), "lease_id": lease1,
                                            "action_type": "TOOL_CALL", "event_payload": ["tool": "grep"]])
        _ = try client.call("HeartbeatNode", ["task_id": .string(taskID), "node_id": .string(n1), "lease_id": lease1])
        let failed = try client.call("FailNode", ["task_id": .string(taskID), "node_id": .string(n1), "lease_id": lease1,
                                                  "error_payload": ["reason": "boom"]])
        XCTAssertNotNil(failed["event_id"]?.stringValue)

        let two = try acquire(client, taskID, owner: "w")
        XCTAssertEqual(two["node_id"]?.stringValue, n2)
        _ = try client.call("CompleteNode", ["task_id": .string(taskID), "node_id": .string(n2),
                                             "lease_id": .string(two["lease_id"]!.stringValue!), "payload": ["via": "alias"]])

        let status = try taskStatus(client, taskID)
        assertJSON(status["counts"], #"{"COMPLETED":1,"FAILED":1}"#)
        assertJSON(status["nodes"]?[0]?["result_payload"], #"{"reason":"boom"}"#)
        assertJSON(status["nodes"]?[1]?["result_payload"], #"{"via":"alias"}"#)

        let journal = two["context"]?["event_journal"]?.arrayValue ?? []
        XCTAssertEqual(journal.map { $0["action_type"]?.stringValue ?? "?" }, ["TOOL_CALL", "FAIL_NODE"],
                       "\(two["context"]?["event_journal"] ?? .null)")
        if journal.count == 2 {
            assertJSON(journal[0]["payload"], #"{"tool":"grep"}"#)
            assertJSON(journal[1]["payload"], #"{"error":{"reason":"boom"}}"#)
        }
        XCTAssertEqual(try client.call("Metrics")["runtime"]?["failed_nodes"]?.int, 1)
    }
}
