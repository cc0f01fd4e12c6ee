// Drop-in detail over the socket against the real binary: params the original ignores, an
// explicit null payload_schema, counts that add up, key order on the raw answer bytes.

import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class WireDetailTests: FeatureTestCase {

    /// Health, Metrics, DescribeInterface and ListResourceLocks answer for params of any JSON
    /// type, as the original (which ignores them) does; prefix is read only from an object.
    func testIgnoredParamsMayBeAnyJSON() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        _ = try client.call("AcquireResourceLock", ["resource_key": "file:a", "ttl_secs": 60])
        _ = try client.call("AcquireResourceLock", ["resource_key": "db:b", "ttl_secs": 60])
        let oddParams = ["5", "\"text\"", "true", "[1,2]", "null", "{}", "-1.5e3", "[]"]
        for params in oddParams {
            for method in ["Health", "Metrics", "DescribeInterface", "ListResourceLocks", "health", "list_resource_locks"] {
                let id = client.takeID()
                try client.sendLine(#"{"id":\#(id),"method":"\#(method)","params":\#(params)}"#)
                let response = try envelope(client, id: id)
                XCTAssertFalse(response["error"].exists, "\(method) with params \(params): \(response)")
                XCTAssertTrue(response["result"].object != nil, "\(method) with params \(params): \(response)")
                if method.lowercased().contains("lock") {
                    XCTAssertEqual(response["result"]["locks"].count, 2, "no prefix read from \(params): \(response)")
                }
            }
        }
        let filtered = try client.call("ListResourceLocks", ["prefix": "file:"])
        XCTAssertEqual(filtered["locks"].array?.map { $0["resource_key"].string ?? "?" }, ["file:a"])
        // Methods whose params matter still refuse params that are not an object.
        try expectReason(client, "TaskStatus", [1, 2], code: -32602, reason: "INVALID_PARAMS")
    }

    /// An explicit "payload_schema": null stays null in TaskStatus and the acquire context, and
    /// after a restart; absent still means {}.
    func testExplicitNullPayloadSchemaIsKept() throws {
        let daemon = try makeDaemon()
        var client = try connect(daemon)
        let withNull = itUUID(), absent = itUUID()
        let taskID = try registerTask(client, nodes: [["id": withNull, "payload_schema": NSNull()], ["id": absent]])
        func check(_ label: String) throws {
            let status = try taskStatus(client, taskID)
            XCTAssertTrue(node(status, withNull)["payload_schema"].isNull, "\(label): \(status)")
            assertJSON(node(status, absent)["payload_schema"], "{}", label)
        }
        try check("registered")
        let got = try acquire(client, taskID)
        XCTAssertEqual(got["node_id"].string, withNull)
        XCTAssertTrue(got["context"]["node"]["payload_schema"].exists)
        XCTAssertTrue(got["context"]["node"]["payload_schema"].isNull, "\(got)")
        daemon.crash()
        try daemon.start()
        client = try connect(daemon)
        try check("after a restart")
    }

    /// counts holds the four statuses only and adds up to the number of nodes; the blocked
    /// figure is task.blocked_nodes (always there), in TaskStatus and in ListTasks.
    func testCountsAddUpAndBlockedNodesIsItsOwnField() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let a = itUUID(), b = itUUID(), c = itUUID(), d = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(a), nodeDef(b, [a]), nodeDef(c, [b]), nodeDef(d)])
        var status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]["blocked_nodes"].int, 0, "present and 0 when none: \(status["task"])")
        let listed = try client.call("ListTasks")["tasks"][0]
        XCTAssertEqual(listed["blocked_nodes"].int, 0, "\(listed)")

        let held = try acquire(client, taskID)
        _ = try client.call("FailNode", ["task_id": taskID, "node_id": a, "lease_id": held["lease_id"].string!,
                                         "error_payload": ["why": "test"]])
        status = try taskStatus(client, taskID)
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 3])
        XCTAssertEqual(counts(status).values.reduce(0, +), 4, "counts add up to the number of nodes")
        XCTAssertEqual(status["task"]["blocked_nodes"].int, 2)
        let entry = try XCTUnwrap(try client.call("ListTasks")["tasks"].array?.first { $0["id"].string == taskID })
        XCTAssertEqual(entry["blocked_nodes"].int, 2, "\(entry)")
        XCTAssertEqual(entry["counts"].keys, ["FAILED", "PENDING"])
    }

    /// Key order on the raw bytes: the acquire context sorted all the way down (our keys
    /// sorted in), the struct-ordered objects in the original's order with ours after.
    func testKeyOrderOnTheRawBytes() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let a = itUUID(), b = itUUID()
        // The client's own JSON comes back as the client wrote it (keys not re-sorted).
        let taskID = try registerTask(client, context: ["z": 1],
                                      nodes: [nodeDef(a), ["id": b, "dependencies": [a], "name": "second"]])
        let first = try acquire(client, taskID)
        _ = try client.call("CommitEvent", ["task_id": taskID, "node_id": a, "lease_id": first["lease_id"].string!,
                                            "payload": ["step": 1]])
        _ = try complete(client, taskID, first, result: ["ok": true])

        let acquired = try rawResult(client, "AcquireNextNode", #"{"task_id":"\#(taskID)"}"#)
        XCTAssertEqual(acquired.keys, ["task_id", "node_id", "lease_id", "lease_owner", "lease_expires_at", "context"])
        let context = acquired["context"]
        XCTAssertEqual(context.keys, ["completed_dependencies", "event_journal", "event_journal_limit", "node", "task"])
        XCTAssertEqual(context["task"].keys, ["context", "created_at", "goal", "id"])
        XCTAssertEqual(context["node"].keys, ["acquired_at", "attempts", "dependencies", "id", "lease_expires_at",
                                              "lease_id", "lease_owner", "max_attempts", "name", "payload_schema",
                                              "result_payload", "status", "task_id", "updated_at"])
        XCTAssertEqual(context["completed_dependencies"][0].keys, ["node_id", "result_payload"])
        for index in 0..<2 {
            XCTAssertEqual(context["event_journal"][index].keys,
                           ["action_type", "id", "node_id", "payload", "seq", "task_id", "timestamp"])
        }

        let status = try rawResult(client, "TaskStatus", #"{"task_id":"\#(taskID)"}"#)
        XCTAssertEqual(status.keys, ["task", "counts", "nodes"])
        XCTAssertEqual(status["task"].keys, ["id", "goal", "context", "created_at", "status", "blocked_nodes"])
        XCTAssertEqual(status["counts"].keys, ["COMPLETED", "RUNNING"])
        XCTAssertEqual(status["nodes"][0].keys, ["id", "task_id", "status", "dependencies", "payload_schema",
                                                 "result_payload", "acquired_at", "lease_id", "lease_owner",
                                                 "lease_expires_at", "updated_at", "attempts", "max_attempts", "name"])

        let events = try rawResult(client, "ReadEvents", #"{"task_id":"\#(taskID)"}"#)
        XCTAssertEqual(events["events"][0].keys, ["id", "task_id", "node_id", "action_type", "payload", "timestamp", "seq"])

        let lockKeys = ["resource_key", "lease_id", "owner", "provider", "task_id", "node_id", "metadata",
                        "acquired_at", "lease_expires_at"]
        let lock = try rawResult(client, "AcquireResourceLock", #"{"resource_key":"k","metadata":{"b":1,"a":2}}"#)
        XCTAssertEqual(lock.keys, lockKeys + ["fencing_token", "waiters"])
        XCTAssertEqual(lock["metadata"].keys, ["b", "a"], "client JSON is kept as written")
        let locks = try rawResult(client, "ListResourceLocks", "{}")
        XCTAssertEqual(locks["locks"][0].keys, lockKeys + ["updated_at", "fencing_token", "waiters"])

        XCTAssertEqual(try rawResult(client, "Health", "{}").keys,
                       ["status", "database", "running_timeout_secs", "context_event_limit"])
        let metrics = try rawResult(client, "Metrics", "{}")
        XCTAssertEqual(metrics.keys, ["uptime_secs", "running_timeout_secs", "context_event_limit", "runtime", "database"])
        XCTAssertEqual(metrics["runtime"].keys, [
            "registered_tasks", "acquire_attempts", "acquired_nodes", "acquisition_latency_micros_total",
            "average_acquisition_latency_micros", "committed_events", "heartbeats", "completed_nodes", "failed_nodes",
            "timeout_rollbacks", "acquired_resource_locks", "released_resource_locks"])
        XCTAssertEqual(metrics["database"].keys, [
            "schema_version", "latest_schema_version", "total_tasks", "total_nodes", "total_events",
            "active_resource_locks", "expired_resource_locks", "running_leases", "expired_running_leases",
            "node_status_counts"])
        XCTAssertEqual(metrics["database"]["node_status_counts"].keys, ["COMPLETED", "RUNNING"])
    }

    /// Sends one request (params as raw JSON text) and returns its result with key order kept.
    private func rawResult(_ client: ITLineClient, _ method: String, _ params: String) throws -> ITOrderedJSON {
        let id = client.takeID()
        try client.sendLine(#"{"id":\#(id),"method":"\#(method)","params":\#(params)}"#)
        let line = try client.readLine()
        let envelope = try ITOrderedJSON.parse(line)
        XCTAssertEqual(envelope.keys, ["id", "result"], String(decoding: line, as: UTF8.self))
        return envelope["result"]
    }
}
