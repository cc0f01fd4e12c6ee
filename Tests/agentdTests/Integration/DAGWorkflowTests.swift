// Integration: the task DAG as the original's clients drive it.

import XCTest
import Foundation

final class DAGWorkflowTests: IntegrationTestCase {

    /// The original's multi-worker DAG: two workers take the two roots, the join waits for
    /// both and sees their results; Metrics and TaskStatus account for everything.
    func testMultiWorkerDAG() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)

        // A broken DescribeInterface must not hide the rest of the scenario.
        do {
            let describe = try client.call("DescribeInterface")
            XCTAssertEqual(describe["protocol"].string, "agentd-jsonl-v1")
            let methods = Set((describe["methods"].array ?? []).compactMap { $0["method"].string })
            XCTAssertTrue(methods.isSuperset(of: ["Metrics", "AcquireResourceLock"]), "DescribeInterface methods: \(methods.sorted())")
            for entry in describe["methods"].array ?? [] {
                assertHasKeys(entry, ["method", "params", "result"], "DescribeInterface method entry")
            }
        } catch {
            XCTFail("DescribeInterface: \(error)")
        }

        let a = itUUID(), b = itUUID(), join = itUUID()
        let taskID = try registerTask(client, goal: "multi-worker DAG", context: ["repo": "agentd"], nodes: [
            nodeDef(a, schema: ["agent": "a"]),
            nodeDef(b, schema: ["agent": "b"]),
            nodeDef(join, [a, b], schema: ["agent": "join"]),
        ])

        let first = try acquire(client, taskID, owner: "worker-a")
        let second = try acquire(client, taskID, owner: "worker-b")
        for (acquired, owner) in [(first, "worker-a"), (second, "worker-b")] {
            assertHasKeys(acquired, ["task_id", "node_id", "lease_id", "lease_owner", "lease_expires_at", "context"], "acquire")
            XCTAssertEqual(acquired["task_id"].string, taskID)
            XCTAssertEqual(acquired["lease_owner"].string, owner)
            XCTAssertNotNil(acquired["lease_expires_at"].int, "lease_expires_at is unix seconds: \(acquired["lease_expires_at"])")
        }
        let firstNode = try XCTUnwrap(first["node_id"].string)
        let secondNode = try XCTUnwrap(second["node_id"].string)
        XCTAssertEqual(Set([firstNode, secondNode]), Set([a, b]), "the two roots go to the two workers")
        XCTAssertNotEqual(first["lease_id"].string, second["lease_id"].string)

        let third = try client.rawCall("AcquireNextNode", ["task_id": taskID, "lease_owner": "worker-c"])
        XCTAssertTrue(third["result"].exists, "\"result\" must be present even when null: \(third)")
        XCTAssertTrue(third["result"].isNull, "nothing runnable: \(third)")
        XCTAssertFalse(third["error"].exists)

        var results: [String: Any] = [:]
        for (acquired, worker) in [(first, "a"), (second, "b")] {
            let payload: [String: Any] = ["worker": worker, "files": ["src/\(worker).rs"], "n": worker == "a" ? 1 : 2]
            results[acquired["node_id"].string!] = payload
            let done = try complete(client, taskID, acquired, result: payload)
            XCTAssertNotNil(done["event_id"].string)
        }

        let joined = try acquire(client, taskID, owner: "worker-a")
        XCTAssertEqual(joined["node_id"].string, join)
        let deps = joined["context"]["completed_dependencies"]
        XCTAssertEqual(deps.canonical, itJSONText([
            ["node_id": a, "result_payload": results[a]!],
            ["node_id": b, "result_payload": results[b]!],
        ]), "completed_dependencies in dependency order")
        _ = try complete(client, taskID, joined, result: ["merged": true])

        let metrics = try client.call("Metrics")
        let database = metrics["database"]
        XCTAssertEqual(database["total_tasks"].int, 1, "\(metrics)")
        XCTAssertEqual(database["total_nodes"].int, 3, "\(metrics)")
        XCTAssertEqual(metrics["runtime"]["completed_nodes"].int, 3, "\(metrics)")
        let schema = try XCTUnwrap(database["schema_version"].int, "\(metrics)")
        XCTAssertEqual(schema, database["latest_schema_version"].int)
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
        XCTAssertEqual(task["id"].string, taskID)
        XCTAssertEqual(task["goal"].string, "multi-worker DAG")
        assertJSON(task["context"], #"{"repo":"agentd"}"#)
        XCTAssertTrue(itIsISOMillis(task["created_at"].string), "created_at \(task["created_at"])")
        let nodes = try XCTUnwrap(status["nodes"].array)
        XCTAssertEqual(nodes.map { $0["id"].string ?? "?" }, [a, b, join], "nodes in registration order")
        for node in nodes {
            assertHasKeys(node, Self.nodeKeys, "Node")
            XCTAssertEqual(node["task_id"].string, taskID)
            XCTAssertEqual(node["status"].string, "COMPLETED")
            for key in ["lease_id", "lease_owner", "lease_expires_at"] {
                XCTAssertTrue(node[key].isNull, "\(key) must be null when not RUNNING: \(node)")
            }
            XCTAssertNotNil(node["updated_at"].int, "updated_at is unix seconds: \(node)")
        }
        assertJSON(nodes[0]["payload_schema"], #"{"agent":"a"}"#)
        assertJSON(nodes[2]["payload_schema"], #"{"agent":"join"}"#)
        assertJSON(nodes[2]["dependencies"], itJSONText([a, b]))
        assertJSON(nodes[0]["dependencies"], "[]")
        assertJSON(nodes[0]["result_payload"], itJSONText(results[a]!))
        assertJSON(nodes[2]["result_payload"], #"{"merged":true}"#)
    }

    /// client_test.py of the original, five calls on one connection, with the context the
    /// second acquire carries checked field by field.
    func testPythonClientFlowOnOneConnection() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let firstNode = itUUID(), secondNode = itUUID()

        let taskID = try registerTask(client, goal: "Demonstrate agentd node acquisition",
                                      context: ["source": "client_test.py"], nodes: [
            nodeDef(firstNode, schema: ["type": "object"]),
            nodeDef(secondNode, [firstNode], schema: ["type": "object"]),
        ])

        let acquired = try client.call("AcquireNextNode", ["task_id": taskID])
        XCTAssertEqual(acquired["node_id"].string, firstNode)
        XCTAssertEqual(acquired["lease_owner"].string, "anonymous", "default lease owner")
        let leaseID = try XCTUnwrap(acquired["lease_id"].string)

        let committed = try client.call("CommitEvent", ["task_id": taskID, "node_id": firstNode, "lease_id": leaseID,
                                                        "payload": ["message": "node started"]])
        let commitEventID = try XCTUnwrap(committed["event_id"].string)

        let resultPayload: [String: Any] = ["ok": true, "value": "first node complete"]
        let completed = try client.call("CompleteNode", ["task_id": taskID, "node_id": firstNode, "lease_id": leaseID,
                                                         "result_payload": resultPayload])
        let completeEventID = try XCTUnwrap(completed["event_id"].string)
        XCTAssertNotEqual(commitEventID, completeEventID)

        let next = try client.call("AcquireNextNode", ["task_id": taskID])
        XCTAssertEqual(next["node_id"].string, secondNode)
        let context = next["context"]
        assertHasKeys(context, ["task", "node", "completed_dependencies", "event_journal_limit", "event_journal"], "context")
        assertJSON(context["completed_dependencies"],
                   itJSONText([["node_id": firstNode, "result_payload": resultPayload]]))
        XCTAssertEqual(context["event_journal_limit"].int, 50, "default event journal limit")

        let journal = try XCTUnwrap(context["event_journal"].array, "\(context)")
        XCTAssertEqual(journal.map { $0["action_type"].string ?? "?" }, ["COMMIT_EVENT", "COMPLETE_NODE"], "journal oldest first: \(context["event_journal"])")
        if journal.count == 2 {
            XCTAssertEqual(journal[0]["id"].string, commitEventID)
            assertJSON(journal[0]["payload"], #"{"message":"node started"}"#)
            XCTAssertEqual(journal[1]["id"].string, completeEventID)
            assertJSON(journal[1]["payload"], itJSONText(["result": resultPayload]))
            for event in journal {
                assertHasKeys(event, ["id", "task_id", "node_id", "action_type", "payload", "timestamp"], "event")
                XCTAssertEqual(event["task_id"].string, taskID)
                XCTAssertEqual(event["node_id"].string, firstNode)
                XCTAssertTrue(itIsISOMillis(event["timestamp"].string), "timestamp \(event["timestamp"])")
            }
        }

        let task = context["task"]
        assertHasKeys(task, ["id", "goal", "context", "created_at"], "context.task")
        XCTAssertEqual(task["id"].string, taskID)
        XCTAssertEqual(task["goal"].string, "Demonstrate agentd node acquisition")
        assertJSON(task["context"], #"{"source":"client_test.py"}"#)
        XCTAssertTrue(itIsISOMillis(task["created_at"].string))

        let node = context["node"]
        assertHasKeys(node, Self.nodeKeys, "context.node")
        XCTAssertEqual(node["id"].string, secondNode)
        XCTAssertEqual(node["task_id"].string, taskID)
        XCTAssertEqual(node["status"].string, "RUNNING")
        XCTAssertEqual(node["lease_id"].string, next["lease_id"].string)
        XCTAssertEqual(node["lease_owner"].string, "anonymous")
        XCTAssertEqual(node["lease_expires_at"].int, next["lease_expires_at"].int)
        XCTAssertNotNil(node["acquired_at"].int)
        assertJSON(node["dependencies"], itJSONText([firstNode]))
        assertJSON(node["payload_schema"], #"{"type":"object"}"#)
        XCTAssertTrue(node["result_payload"].isNull)
    }

    /// FailNode journals FAIL_NODE with {"error": ...} and keeps the error as the node's
    /// result_payload; the alias `payload` works for CompleteNode and `event_payload` for
    /// CommitEvent; a custom action_type is kept.
    func testFailNodeAndPayloadAliases() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let n1 = itUUID(), n2 = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(n1), nodeDef(n2)])

        let one = try acquire(client, taskID, owner: "w")
        let lease1 = one["lease_id"].string!
        _ = try client.call("CommitEvent", ["task_id": taskID, "node_id": n1, "lease_id": lease1,
                                            "action_type": "TOOL_CALL", "event_payload": ["tool": "grep"]])
        _ = try client.call("HeartbeatNode", ["task_id": taskID, "node_id": n1, "lease_id": lease1])
        let failed = try client.call("FailNode", ["task_id": taskID, "node_id": n1, "lease_id": lease1,
                                                  "error_payload": ["reason": "boom"]])
        XCTAssertNotNil(failed["event_id"].string)

        let two = try acquire(client, taskID, owner: "w")
        XCTAssertEqual(two["node_id"].string, n2)
        _ = try client.call("CompleteNode", ["task_id": taskID, "node_id": n2, "lease_id": two["lease_id"].string!,
                                             "payload": ["via": "alias"]])

        let status = try taskStatus(client, taskID)
        assertJSON(status["counts"], #"{"COMPLETED":1,"FAILED":1}"#)
        assertJSON(status["nodes"][0]["result_payload"], #"{"reason":"boom"}"#)
        assertJSON(status["nodes"][1]["result_payload"], #"{"via":"alias"}"#)

        let journal = two["context"]["event_journal"].array ?? []
        XCTAssertEqual(journal.map { $0["action_type"].string ?? "?" }, ["TOOL_CALL", "FAIL_NODE"], "\(two["context"]["event_journal"])")
        if journal.count == 2 {
            assertJSON(journal[0]["payload"], #"{"tool":"grep"}"#)
            assertJSON(journal[1]["payload"], #"{"error":{"reason":"boom"}}"#)
        }
        XCTAssertEqual(try client.call("Metrics")["runtime"]["failed_nodes"].int, 1)
    }
}
