// Over the socket: error.data.reason on every kind of error, invalid UTF-8, and
// DescribeInterface listing every method.

import XCTest
import Foundation

final class ErrorReasonTests: FeatureTestCase {

    func testErrorReasons() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let a = itUUID(), b = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(a), nodeDef(b)])
        let got = try acquire(client, taskID)
        let lease = got["lease_id"].string!
        let stranger = itUUID()

        try expectReason(client, "TaskStatus", ["task_id": stranger], reason: "TASK_NOT_FOUND",
                         message: "task not found: \(stranger)")
        try expectReason(client, "AcquireNextNode", ["task_id": stranger], reason: "TASK_NOT_FOUND",
                         message: "task not found: \(stranger)")
        try expectReason(client, "AcquireResourceLock", ["resource_key": "k", "task_id": stranger], reason: "TASK_NOT_FOUND")
        try expectReason(client, "HeartbeatNode", ["task_id": taskID, "node_id": stranger, "lease_id": lease],
                         reason: "NODE_NOT_FOUND", message: "node not found: \(stranger) for task \(taskID)")
        try expectReason(client, "HeartbeatNode", ["task_id": taskID, "node_id": a, "lease_id": itUUID()],
                         reason: "NODE_NOT_RUNNING", message: "node \(a) for task \(taskID) is not RUNNING")
        try expectReason(client, "HeartbeatNode", ["task_id": taskID, "node_id": b, "lease_id": itUUID()],
                         reason: "NODE_NOT_RUNNING", message: "node \(b) for task \(taskID) is not RUNNING")
        try expectReason(client, "CompleteNode", ["task_id": taskID, "node_id": a, "lease_id": itUUID(), "result_payload": 1],
                         reason: "LEASE_MISMATCH", message: "invalid state: node \(a) cannot transition from RUNNING to COMPLETED")
        try expectReason(client, "FailNode", ["task_id": taskID, "node_id": a, "lease_id": itUUID(), "error_payload": 1],
                         reason: "LEASE_MISMATCH", message: "invalid state: node \(a) cannot transition from RUNNING to FAILED")
        try expectReason(client, "CommitEvent", ["task_id": taskID, "node_id": a, "lease_id": itUUID(), "payload": 1],
                         reason: "LEASE_MISMATCH",
                         message: "invalid state: node \(a) for task \(taskID) requires the current RUNNING lease")

        let held = try lock(client, "res", ttl: 30)
        try expectReason(client, "ReleaseResourceLock", ["resource_key": "res", "lease_id": itUUID()],
                         reason: "LOCK_NOT_HELD", message: "invalid state: resource lock res requires the current lease")
        try expectReason(client, "HeartbeatResourceLock", ["resource_key": "res", "lease_id": itUUID()],
                         reason: "LOCK_NOT_HELD", message: "invalid state: resource lock res requires the current active lease")
        try expectReason(client, "ReleaseResourceLock", ["resource_key": "nothing", "lease_id": held["lease_id"].string!],
                         reason: "LOCK_NOT_HELD", message: "invalid state: resource lock nothing requires the current lease")

        let x = itUUID(), y = itUUID()
        try expectReason(client, "RegisterTask", ["goal": "g", "initial_nodes": [nodeDef(x, [y]), nodeDef(y, [x])]],
                         reason: "INVALID_DAG", prefix: "invalid state: cycle detected at node ")
        try expectReason(client, "RegisterTask", ["goal": "g", "initial_nodes": [nodeDef(x), nodeDef(x)]],
                         reason: "INVALID_DAG", message: "invalid state: duplicate node id: \(x)")

        try expectReason(client, "TaskStatus", [:] as [String: Any], code: -32602, reason: "INVALID_PARAMS",
                         prefix: "invalid params: ")
        try expectReason(client, "AcquireNextNode", ["task_id": taskID, "wait_ms": -1], code: -32602,
                         reason: "INVALID_PARAMS", prefix: "invalid params: ")
        try expectReason(client, "AcquireNextNode", ["task_id": taskID, "wait_ms": "soon"], code: -32602,
                         reason: "INVALID_PARAMS", prefix: "invalid params: ")
        try expectReason(client, "AcquireNextNode", ["task_id": taskID, "lease_ttl_secs": -5], code: -32602,
                         reason: "INVALID_PARAMS", prefix: "invalid params: ")
        try expectReason(client, "AcquireNextNode", ["task_id": taskID, "release_on_disconnect": "yes"], code: -32602,
                         reason: "INVALID_PARAMS", prefix: "invalid params: ")
        try expectReason(client, "ListResourceLocks", ["prefix": 3], code: -32602, reason: "INVALID_PARAMS", prefix: "invalid params: ")
        try expectReason(client, "RegisterTask", ["goal": "g", "initial_nodes": [["max_attempts": 0]]], code: -32602,
                         reason: "INVALID_PARAMS", prefix: "invalid params: ")
        try expectReason(client, "RegisterTask", ["goal": "g", "initial_nodes": [["max_attempts": "two"]]], code: -32602,
                         reason: "INVALID_PARAMS", prefix: "invalid params: ")
        for method in ["ListTasks", "ReadEvents"] {
            for limit in [0, 1001] {
                try expectReason(client, method, ["task_id": taskID, "limit": limit], code: -32602, reason: "INVALID_PARAMS",
                                 prefix: "invalid params: ")
            }
        }
        try expectReason(client, "ListTasks", ["status": "DONE"], code: -32602, reason: "INVALID_PARAMS", prefix: "invalid params: ")
        try expectReason(client, "AcquireNextNode", ["task_id": stranger, "wait_ms": 5_000], reason: "TASK_NOT_FOUND",
                         message: "task not found: \(stranger)")
        try expectReason(client, "NoSuchMethod", nil, code: -32601, reason: "UNKNOWN_METHOD",
                         message: "unknown method: NoSuchMethod")

        // Lines that do not parse: no id, reason PARSE_ERROR, connection stays open.
        // JSON that is not a request object may say INVALID_REQUEST instead.
        for (bad, reasons) in [("this is not json", ["PARSE_ERROR"]), (#"{"id":1,"method":"#, ["PARSE_ERROR"]),
                               ("[1,2]", ["PARSE_ERROR", "INVALID_REQUEST"]),
                               (#"{"id":5}"#, ["PARSE_ERROR", "INVALID_REQUEST"])] {
            try client.sendLine(bad)
            let response = try client.readResponse(timeout: 5)
            assertError(response, code: -32700, prefix: "parse error: ", idCanonical: nil, bad)
            let reason = response["error"]["data"]["reason"].string ?? "<none>"
            XCTAssertTrue(reasons.contains(reason), "\(bad): reason \(reason), expected one of \(reasons): \(response)")
        }
        // Invalid UTF-8 (a lone continuation byte, an overlong form, a truncated sequence).
        for bytes: [UInt8] in [[0x80], [0xC0, 0xAF], [0xE2, 0x82]] {
            let line = Array(#"{"id":1,"method":"Health","params":{"x":""#.utf8) + bytes + Array(#""}}"#.utf8) + [0x0A]
            try client.send(line)
            let response = try client.readResponse(timeout: 5)
            assertReason(response, code: -32700, reason: "PARSE_ERROR", "invalid UTF-8 \(bytes)")
        }
        let raw = [UInt8]([0xFF, 0xFE, 0x0A])
        try client.send(raw)
        assertReason(try client.readResponse(timeout: 5), code: -32700, reason: "PARSE_ERROR", "bytes FF FE")
        XCTAssertEqual(try client.call("Health")["status"].string, "ok", "the connection stays open after invalid UTF-8")

        // Snake-case names of the new methods work too.
        XCTAssertNotNil(try client.call("read_events", ["task_id": taskID])["events"].array)
        XCTAssertNotNil(try client.call("list_tasks", [:] as [String: Any])["tasks"].array)

        // Too large: -32001 with a reason, then the connection closes.
        let big = try connect(daemon)
        let huge = #"{"id":1,"method":"Health","params":{"pad":""# + String(repeating: "x", count: 1_048_600) + "\"}}\n"
        let writer = ITBackgroundWriter(client: big, bytes: Array(huge.utf8))
        let tooLarge = try big.readResponse(timeout: 10)
        XCTAssertTrue(writer.wait(timeout: 10), "the writer thread did not finish")
        assertReason(tooLarge, code: -32001, reason: "REQUEST_TOO_LARGE", "oversized line")
        XCTAssertEqual(tooLarge["error"]["message"].string, "request exceeds 1048576 bytes")
    }

    func testDescribeInterfaceListsEveryMethod() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let described = try client.call("DescribeInterface")
        XCTAssertEqual(described["protocol"].string, "agentd-jsonl-v1")
        let methods = try XCTUnwrap(described["methods"].array, "\(described)")
        var byName: [String: ITJSON] = [:]
        for entry in methods {
            assertHasKeys(entry, ["method", "params", "result"], "method entry")
            if let name = entry["method"].string { byName[name] = entry }
        }
        let originalMethods = ["DescribeInterface", "Health", "Metrics", "RegisterTask", "AcquireNextNode", "CommitEvent",
                     "HeartbeatNode", "CompleteNode", "FailNode", "TaskStatus", "AcquireResourceLock",
                     "HeartbeatResourceLock", "ReleaseResourceLock", "ListResourceLocks"]
        let addedMethods = ["AddNodes", "RetryNode", "CancelTask", "ListTasks", "DeleteTask", "ReadEvents"]
        for name in originalMethods + addedMethods {
            XCTAssertNotNil(byName[name], "DescribeInterface lists \(name)")
            XCTAssertTrue(byName[name]?["params"].exists ?? false, "\(name) params")
            XCTAssertTrue(byName[name]?["result"].exists ?? false, "\(name) result")
        }
        XCTAssertEqual(methods.count, byName.count, "each method listed once")

        // The new optional fields are described with their methods.
        func mentions(_ method: String, _ fields: [String], file: StaticString = #filePath, line: UInt = #line) {
            let text = byName[method]?["params"].canonical ?? ""
            for field in fields {
                XCTAssertTrue(text.contains(field), "\(method) params mention \(field): \(text)", file: file, line: line)
            }
        }
        mentions("AcquireNextNode", ["wait_ms", "lease_ttl_secs", "release_on_disconnect"])
        mentions("HeartbeatNode", ["lease_ttl_secs"])
        mentions("AcquireResourceLock", ["wait_ms", "release_on_disconnect"])
        mentions("ListResourceLocks", ["prefix"])
        mentions("AddNodes", ["task_id", "nodes"])
        mentions("RetryNode", ["task_id", "node_id"])
        mentions("CancelTask", ["task_id"])
        mentions("ListTasks", ["status", "limit", "after"])
        mentions("DeleteTask", ["task_id"])
        mentions("ReadEvents", ["task_id", "node_id", "after_seq", "limit", "wait_ms"])
        XCTAssertTrue((byName["ReadEvents"]?["result"].canonical ?? "").contains("next_seq"))
        XCTAssertTrue((byName["ListTasks"]?["result"].canonical ?? "").contains("next_after"))
        XCTAssertTrue((byName["AddNodes"]?["result"].canonical ?? "").contains("node_ids"))
    }
}
