// Over the socket: attempts and max_attempts, lease_ttl_secs, task status, BLOCKED,
// RetryNode, CancelTask, ListTasks, DeleteTask.

import XCTest
import Foundation
import AgentdClient

final class LifecycleTests: FeatureTestCase {

    /// lease_expires_at - acquired_at of a node record (0 when either is missing).
    private func leaseLength(_ record: JSONValue?) -> Int {
        (record?["lease_expires_at"]?.int ?? 0) - (record?["acquired_at"]?.int ?? 0)
    }

    /// n1 (max_attempts 2) <- n2 <- n3. Two expired leases (the second one taken by a parked
    /// acquirer woken by the expiry) make n1 FAILED, n2 and n3 BLOCKED, the task FAILED.
    /// RetryNode wakes a parked acquirer and the DAG then runs to the end.
    func testAttemptsExhaustedThenRetry() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let parked = try openConnection(daemon)
        let probe = try openConnection(daemon)
        let n1 = itUUID(), n2 = itUUID(), n3 = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(n1, maxAttempts: 2), nodeSpec(n2, [n1]), nodeSpec(n3, [n2])])
        let task = JSONValue.string(taskID)

        var status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "ACTIVE")
        XCTAssertEqual(node(status, n1)?["attempts"]?.int, 0)
        XCTAssertEqual(node(status, n1)?["max_attempts"]?.int, 2)
        XCTAssertEqual(node(status, n2)?["max_attempts"], .null, "no max_attempts = null: \(node(status, n2) ?? .null)")
        assertHasKeys(node(status, n2), IntegrationTestCase.nodeKeys + ["attempts", "max_attempts"], "node")

        let first = try client.call("AcquireNextNode", ["task_id": task, "lease_owner": "w1", "lease_ttl_secs": 1])
        XCTAssertEqual(first["node_id"]?.stringValue, n1)
        XCTAssertEqual(first["context"]?["node"]?["attempts"]?.int, 1, "\(first["context"]?["node"] ?? .null)")
        XCTAssertEqual(first["context"]?["node"]?["max_attempts"]?.int, 2)

        // A parked acquirer is woken when the lease expires.
        let waitSecond = post(parked, "AcquireNextNode", ["task_id": task, "lease_owner": "w2", "lease_ttl_secs": 1,
                                                          "wait_ms": 10_000])
        let second = try answer(waitSecond, timeout: 8)
        XCTAssertEqual(second["node_id"]?.stringValue, n1)
        XCTAssertEqual(second["context"]?["node"]?["attempts"]?.int, 2, "\(second["context"]?["node"] ?? .null)")
        XCTAssertNotEqual(second["lease_id"]?.stringValue, first["lease_id"]?.stringValue)

        try waitUntil("n1 is FAILED after its last attempt expired", timeout: 8) {
            try self.nodeStatus(client, taskID, n1) == "FAILED"
        }
        status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "FAILED", "\(status["task"] ?? .null)")
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 2])
        XCTAssertEqual(status["task"]?["blocked_nodes"]?.int, 2, "blocked_nodes")
        XCTAssertEqual(node(status, n2)?["status"]?.stringValue, "PENDING", "a BLOCKED node stays PENDING")
        assertJSON(node(status, n1)?["result_payload"], #"{"error":"attempts exhausted","attempts":2}"#)
        XCTAssertEqual(node(status, n1)?["attempts"]?.int, 2)
        XCTAssertEqual(node(status, n1)?["lease_id"], .null)
        XCTAssertTrue(try client.call("AcquireNextNode", ["task_id": task]).isNull)

        let expiries = try allEvents(client, taskID).filter { $0["action_type"]?.stringValue == "LEASE_EXPIRED" }
        XCTAssertEqual(expiries.map { $0["payload"]?["attempt"]?.int ?? -1 }, [1, 2], "\(expiries)")
        XCTAssertEqual(expiries.map { $0["payload"]?["reason"]?.stringValue ?? "?" }, ["timeout", "timeout"])
        XCTAssertEqual(expiries.map { $0["payload"]?["lease_id"]?.stringValue ?? "?" },
                       [first["lease_id"]?.stringValue ?? "", second["lease_id"]?.stringValue ?? ""])
        XCTAssertEqual(expiries.map { $0["payload"]?["lease_owner"]?.stringValue ?? "?" }, ["w1", "w2"])
        XCTAssertEqual(expiries.map { $0["node_id"]?.stringValue ?? "?" }, [n1, n1])

        // RetryNode refuses a node that is not FAILED.
        expectReason(client, "RetryNode", ["task_id": task, "node_id": .string(n2)], reason: "NODE_NOT_RUNNING",
                     message: "invalid state: node \(n2) cannot transition from PENDING to PENDING")
        expectReason(client, "RetryNode", ["task_id": task, "node_id": .string(itUUID())], reason: "NODE_NOT_FOUND")
        expectReason(client, "RetryNode", ["task_id": .string(itUUID()), "node_id": .string(n1)], reason: "TASK_NOT_FOUND")

        // A parked acquirer is woken by RetryNode.
        let waitThird = post(parked, "AcquireNextNode", ["task_id": task, "lease_owner": "w3", "wait_ms": 10_000])
        try confirmParked(waitThird, probe: probe, "acquire on a FAILED task")
        assertJSON(try client.call("RetryNode", ["task_id": task, "node_id": .string(n1)]), #"{"ok":true}"#)
        let third = try answer(waitThird, timeout: 5)
        XCTAssertEqual(third["node_id"]?.stringValue, n1)
        XCTAssertEqual(third["context"]?["node"]?["attempts"]?.int, 1, "attempts restart from 0 after RetryNode")

        status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "ACTIVE")
        XCTAssertEqual(counts(status), ["RUNNING": 1, "PENDING": 2])
        XCTAssertEqual(status["task"]?["blocked_nodes"]?.int, 0, "nothing is blocked any more")

        try complete(parked, taskID, third, result: ["n": 1])
        expectReason(client, "RetryNode", ["task_id": task, "node_id": .string(n1)], reason: "NODE_NOT_RUNNING",
                     message: "invalid state: node \(n1) cannot transition from COMPLETED to PENDING")
        let next = try acquire(client, taskID)
        XCTAssertEqual(next["node_id"]?.stringValue, n2, "the dependent is runnable after the retried node completed")
        try complete(client, taskID, next, result: ["n": 2])
        try complete(client, taskID, try acquire(client, taskID), result: ["n": 3])
        status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "COMPLETED")
        XCTAssertEqual(counts(status), ["COMPLETED": 3])
    }

    /// FailNode makes a node FAILED even with attempts left; the task stays ACTIVE while an
    /// unrelated node can still run, and becomes FAILED when only blocked nodes are left.
    func testFailNodeBlocksDependentsAndTaskStatus() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let x = itUUID(), y = itUUID(), z = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(x, maxAttempts: 5), nodeSpec(y, [x]), nodeSpec(z)])

        let gotX = try acquire(client, taskID)
        XCTAssertEqual(gotX["node_id"]?.stringValue, x)
        _ = try client.call("FailNode", ["task_id": .string(taskID), "node_id": .string(x),
                                         "lease_id": .string(gotX["lease_id"]!.stringValue!), "error_payload": ["boom": true]])
        var status = try taskStatus(client, taskID)
        XCTAssertEqual(node(status, x)?["status"]?.stringValue, "FAILED")
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 2])
        XCTAssertEqual(status["task"]?["blocked_nodes"]?.int, 1, "blocked_nodes")
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "ACTIVE", "z can still run")

        let gotZ = try acquire(client, taskID)
        XCTAssertEqual(gotZ["node_id"]?.stringValue, z)
        status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "ACTIVE", "z is RUNNING")
        try complete(client, taskID, gotZ, result: [:])
        status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "FAILED")
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 1, "COMPLETED": 1])
        XCTAssertEqual(status["task"]?["blocked_nodes"]?.int, 1, "blocked_nodes")

        // A node added on the FAILED node is BLOCKED at once; a runnable one makes the task ACTIVE.
        let w = itUUID(), v = itUUID()
        _ = try client.call("AddNodes", ["task_id": .string(taskID), "nodes": [nodeSpec(w, [y])]])
        status = try taskStatus(client, taskID)
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 2, "COMPLETED": 1])
        XCTAssertEqual(status["task"]?["blocked_nodes"]?.int, 2, "blocked_nodes")
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "FAILED")
        _ = try client.call("AddNodes", ["task_id": .string(taskID), "nodes": [nodeSpec(v, [z])]])
        status = try taskStatus(client, taskID)
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 3, "COMPLETED": 1])
        XCTAssertEqual(status["task"]?["blocked_nodes"]?.int, 2, "blocked_nodes")
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "ACTIVE", "v can run")

        // A task without nodes is ACTIVE.
        let empty = try registerTask(client, nodes: [])
        XCTAssertEqual(try taskStatus(client, empty)["task"]?["status"]?.stringValue, "ACTIVE")
    }

    /// lease_ttl_secs on AcquireNextNode and HeartbeatNode sets the lease length.
    func testLeaseTTLOnAcquireAndHeartbeat() throws {
        let daemon = try makeDaemon(["--node-timeout", "100"])
        let client = try openConnection(daemon)
        let n = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(n)])

        let got = try client.call("AcquireNextNode", ["task_id": .string(taskID), "lease_ttl_secs": 7])
        let leaseID = try XCTUnwrap(got["lease_id"]?.stringValue, "\(got)")
        var record = node(try taskStatus(client, taskID), n)
        // A deadline is the first whole second at or after now + ttl: ttl or ttl + 1 after
        // acquired_at (the floor of now).
        XCTAssertTrue([7, 8].contains(try XCTUnwrap(record?["lease_expires_at"]?.int) - (try XCTUnwrap(record?["acquired_at"]?.int))),
                      "\(record ?? .null)")
        XCTAssertEqual(got["lease_expires_at"]?.int, record?["lease_expires_at"]?.int)
        let ctx = got["context"]?["node"]
        XCTAssertTrue([7, 8].contains(leaseLength(ctx)), "\(ctx ?? .null)")

        assertJSON(try client.call("HeartbeatNode", ["task_id": .string(taskID), "node_id": .string(n), "lease_id": .string(leaseID),
                                                     "lease_ttl_secs": 20]), #"{"ok":true}"#)
        record = node(try taskStatus(client, taskID), n)
        XCTAssertTrue([20, 21].contains(leaseLength(record)), "\(record ?? .null)")

        // Without it, the node timeout.
        _ = try client.call("HeartbeatNode", ["task_id": .string(taskID), "node_id": .string(n), "lease_id": .string(leaseID)])
        record = node(try taskStatus(client, taskID), n)
        XCTAssertTrue([100, 101].contains(leaseLength(record)), "\(record ?? .null)")

        let other = try registerTask(client, nodes: [nodeSpec(itUUID())])
        _ = try acquire(client, other)
        let otherRecord = try taskStatus(client, other)["nodes"]?[0]
        XCTAssertTrue([100, 101].contains(leaseLength(otherRecord)), "\(otherRecord ?? .null)")
    }

    /// CancelTask: open nodes FAILED, leases end, parked acquirers get null, new work refused.
    func testCancelTask() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        let parked = try openConnection(daemon)
        let probe = try openConnection(daemon)
        let a = itUUID(), b = itUUID(), c = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(a), nodeSpec(b, [a]), nodeSpec(c)])
        let task = JSONValue.string(taskID)
        let gotA = try acquire(client, taskID)
        XCTAssertEqual(gotA["node_id"]?.stringValue, a)
        let gotC = try acquire(client, taskID)
        XCTAssertEqual(gotC["node_id"]?.stringValue, c)
        try complete(client, taskID, gotC, result: ["c": true])
        let leaseA = JSONValue.string(gotA["lease_id"]!.stringValue!)

        let waiting = post(parked, "AcquireNextNode", ["task_id": task, "wait_ms": 10_000])
        try confirmParked(waiting, probe: probe, "acquire with nothing runnable")

        assertJSON(try client.call("CancelTask", ["task_id": task]), #"{"ok":true}"#)
        // A result (AgentdConnection refuses an answer without "result"), and it is null.
        let woken = try answer(waiting, timeout: 5)
        XCTAssertTrue(woken.isNull, "a parked acquirer of a cancelled task gets null: \(woken)")

        let status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "CANCELLED")
        XCTAssertEqual(counts(status), ["FAILED": 2, "COMPLETED": 1])
        for id in [a, b] {
            XCTAssertEqual(node(status, id)?["status"]?.stringValue, "FAILED")
            assertJSON(node(status, id)?["result_payload"], #"{"error":"task cancelled"}"#, id)
            XCTAssertEqual(node(status, id)?["lease_id"], .null, "\(node(status, id) ?? .null)")
        }
        XCTAssertEqual(node(status, c)?["status"]?.stringValue, "COMPLETED")

        expectReason(client, "HeartbeatNode", ["task_id": task, "node_id": .string(a), "lease_id": leaseA],
                     reason: "NODE_NOT_RUNNING", message: "node \(a) for task \(taskID) is not RUNNING")
        expectReason(client, "CompleteNode", ["task_id": task, "node_id": .string(a), "lease_id": leaseA, "result_payload": 1],
                     reason: "NODE_NOT_RUNNING", message: "invalid state: node \(a) cannot transition from FAILED to COMPLETED")
        let closed = "invalid state: task \(taskID) is CANCELLED"
        expectReason(client, "AcquireNextNode", ["task_id": task], reason: "TASK_CLOSED", message: closed)
        expectReason(client, "AcquireNextNode", ["task_id": task, "wait_ms": 1000], reason: "TASK_CLOSED", message: closed)
        expectReason(client, "AddNodes", ["task_id": task, "nodes": [nodeSpec(itUUID())]], reason: "TASK_CLOSED")
        expectReason(client, "RetryNode", ["task_id": task, "node_id": .string(a)], reason: "TASK_CLOSED")
        assertJSON(try client.call("CancelTask", ["task_id": task]), #"{"ok":true}"#, "CancelTask is idempotent")
        XCTAssertEqual(try taskStatus(client, taskID)["task"]?["status"]?.stringValue, "CANCELLED")
        expectReason(client, "CancelTask", ["task_id": .string(itUUID())], reason: "TASK_NOT_FOUND")
    }

    /// ListTasks pages newest first with next_after; a status filter.
    func testListTasksPaging() throws {
        let daemon = try makeDaemon()
        let client = try openConnection(daemon)
        var tasks: [String] = []
        var nodes: [String] = []
        for i in 1...5 {
            let n = itUUID()
            nodes.append(n)
            tasks.append(try registerTask(client, goal: "goal \(i)", nodes: [nodeSpec(n)]))
        }
        let newestFirst = Array(tasks.reversed())
        func ids(_ page: JSONValue) -> [String]? { page["tasks"]?.arrayValue?.compactMap { $0["id"]?.stringValue } }

        var seen: [String] = []
        var after: String? = nil
        var pages = 0
        repeat {
            var params = JSONObject([("limit", 2)])
            if let after { params["after"] = .string(after) }
            let page = try client.call("ListTasks", .object(params))
            let list = try XCTUnwrap(page["tasks"]?.arrayValue, "\(page)")
            XCTAssertLessThanOrEqual(list.count, 2)
            for task in list {
                assertHasKeys(task, ["id", "goal", "status", "created_at", "counts"], "listed task")
                XCTAssertTrue(itIsISOMillis(task["created_at"]?.stringValue), "\(task)")
            }
            seen += list.compactMap { $0["id"]?.stringValue }
            XCTAssertNotNil(page["next_after"], "next_after present: \(page)")
            after = page["next_after"]?.stringValue
            if let after { XCTAssertEqual(after, list.last?["id"]?.stringValue, "next_after is the last listed task") }
            pages += 1
        } while after != nil && pages < 10
        XCTAssertEqual(seen, newestFirst)
        XCTAssertEqual(pages, 3)

        let first = try client.call("ListTasks", ["limit": 2])
        XCTAssertEqual(first["tasks"]?[0]?["goal"]?.stringValue, "goal 5")
        XCTAssertEqual(first["tasks"]?[0]?["status"]?.stringValue, "ACTIVE")
        assertJSON(first["tasks"]?[0]?["counts"], #"{"PENDING":1}"#)

        let all = try client.call("ListTasks", [:])
        XCTAssertEqual(ids(all), newestFirst)
        XCTAssertEqual(all["next_after"], .null, "\(all)")

        // Complete task 3's only node.
        let got = try acquire(client, tasks[2])
        try complete(client, tasks[2], got, result: [:])
        let done = try client.call("ListTasks", ["status": "COMPLETED"])
        XCTAssertEqual(ids(done), [tasks[2]])
        XCTAssertEqual(done["tasks"]?[0]?["status"]?.stringValue, "COMPLETED")
        assertJSON(done["tasks"]?[0]?["counts"], #"{"COMPLETED":1}"#)
        XCTAssertEqual(done["next_after"], .null)
        let active = try client.call("ListTasks", ["status": "ACTIVE", "limit": 10])
        XCTAssertEqual(ids(active), newestFirst.filter { $0 != tasks[2] })
        let cancelled = try client.call("ListTasks", ["status": "CANCELLED"])
        XCTAssertEqual(cancelled["tasks"]?.arrayValue?.count, 0)
    }

    /// DeleteTask: refused while ACTIVE; after CancelTask the task, its events and its locks
    /// go, durably.
    func testDeleteTask() throws {
        let daemon = try makeDaemon()
        var client = try openConnection(daemon)
        let n = itUUID()
        let taskID = try registerTask(client, nodes: [nodeSpec(n)])
        let task = JSONValue.string(taskID)
        let keep = try registerTask(client, nodes: [nodeSpec(itUUID())])
        XCTAssertFalse(try lock(client, "task:lock", ttl: 600, extra: ["task_id": task, "node_id": .string(n)]).isNull)
        XCTAssertFalse(try lock(client, "other:lock", ttl: 600, extra: ["task_id": .string(keep)]).isNull)
        XCTAssertFalse(try lock(client, "free:lock", ttl: 600).isNull)
        _ = try client.call("CommitEvent", ["task_id": task, "node_id": .string(n), "payload": ["x": 1]])

        expectReason(client, "DeleteTask", ["task_id": task], reason: "TASK_CLOSED",
                     message: "invalid state: task \(taskID) is ACTIVE; only a finished or cancelled task can be deleted")
        expectReason(client, "DeleteTask", ["task_id": .string(itUUID())], reason: "TASK_NOT_FOUND")

        assertJSON(try client.call("CancelTask", ["task_id": task]), #"{"ok":true}"#)
        assertJSON(try client.call("DeleteTask", ["task_id": task]), #"{"ok":true}"#)

        func checkGone() throws {
            expectReason(client, "TaskStatus", ["task_id": task], reason: "TASK_NOT_FOUND",
                         message: "task not found: \(taskID)")
            expectReason(client, "ReadEvents", ["task_id": task], reason: "TASK_NOT_FOUND")
            XCTAssertEqual(try listLocks(client).compactMap { $0["resource_key"]?.stringValue }, ["free:lock", "other:lock"])
            let listed = try client.call("ListTasks", [:])["tasks"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
            XCTAssertEqual(listed, [keep])
            XCTAssertEqual(try taskStatus(client, keep)["task"]?["status"]?.stringValue, "ACTIVE")
            let totals = try client.call("Metrics")["database"]
            XCTAssertEqual(totals?["total_tasks"]?.int, 1, "\(totals ?? .null)")
            XCTAssertEqual(totals?["total_nodes"]?.int, 1, "\(totals ?? .null)")
            XCTAssertEqual(totals?["total_events"]?.int, 0, "\(totals ?? .null)")
        }
        try checkGone()
        expectReason(client, "DeleteTask", ["task_id": task], reason: "TASK_NOT_FOUND")

        daemon.crash()
        try daemon.start()
        client = try openConnection(daemon)
        try checkGone()

        // A COMPLETED task can be deleted too.
        let got = try acquire(client, keep)
        try complete(client, keep, got, result: [:])
        assertJSON(try client.call("DeleteTask", ["task_id": .string(keep)]), #"{"ok":true}"#)
        XCTAssertEqual(try listLocks(client).compactMap { $0["resource_key"]?.stringValue }, ["free:lock"])

        // No row of either task is left in the file: not its events, nodes or locks.
        _ = try daemon.stop()
        let count = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(sum(c.execute(q, (sys.argv[2], sys.argv[3])).fetchone()[0] for q in ['SELECT COUNT(*) FROM event_journal WHERE task_id IN (?, ?)', 'SELECT COUNT(*) FROM dag_nodes WHERE task_id IN (?, ?)', 'SELECT COUNT(*) FROM resource_locks WHERE task_id IN (?, ?)', 'SELECT COUNT(*) FROM global_tasks WHERE id IN (?, ?)']))"
        let left = try itRun(try XCTUnwrap(itWhich("python3")), ["-c", count, daemon.dbPath, taskID, keep],
                             environment: ProcessInfo.processInfo.environment, directory: daemon.directory)
        XCTAssertEqual(left.exit, .exited(0), left.stderr)
        XCTAssertEqual(left.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "0")
    }

    /// Attempts, max_attempts, FAILED/BLOCKED and CANCELLED survive a kill -9 and restart.
    func testLifecycleStateSurvivesRestart() throws {
        let daemon = try makeDaemon()
        var client = try openConnection(daemon)
        let n1 = itUUID(), n2 = itUUID()
        let running = try registerTask(client, nodes: [nodeSpec(n1, maxAttempts: 2), nodeSpec(n2, [n1])])
        _ = try acquire(client, running)

        let f1 = itUUID(), f2 = itUUID()
        let failed = try registerTask(client, nodes: [nodeSpec(f1), nodeSpec(f2, [f1])])
        let gotF = try acquire(client, failed)
        _ = try client.call("FailNode", ["task_id": .string(failed), "node_id": .string(f1),
                                         "lease_id": .string(gotF["lease_id"]!.stringValue!), "error_payload": "x"])
        let cancelled = try registerTask(client, nodes: [nodeSpec(itUUID())])
        _ = try client.call("CancelTask", ["task_id": .string(cancelled)])

        daemon.crash()
        try daemon.start()
        client = try openConnection(daemon)

        var status = try taskStatus(client, running)
        XCTAssertEqual(node(status, n1)?["attempts"]?.int, 1, "\(node(status, n1) ?? .null)")
        XCTAssertEqual(node(status, n1)?["max_attempts"]?.int, 2)
        XCTAssertEqual(node(status, n1)?["status"]?.stringValue, "RUNNING")
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "ACTIVE")

        status = try taskStatus(client, failed)
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "FAILED")
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 1])
        XCTAssertEqual(status["task"]?["blocked_nodes"]?.int, 1, "blocked_nodes")

        status = try taskStatus(client, cancelled)
        XCTAssertEqual(status["task"]?["status"]?.stringValue, "CANCELLED")
        expectReason(client, "AcquireNextNode", ["task_id": .string(cancelled)], reason: "TASK_CLOSED",
                     message: "invalid state: task \(cancelled) is CANCELLED")

        func listed(_ filter: String) throws -> [String] {
            try client.call("ListTasks", ["status": .string(filter)])["tasks"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
        }
        XCTAssertEqual(try listed("ACTIVE"), [running])
        XCTAssertEqual(try listed("FAILED"), [failed])
        XCTAssertEqual(try listed("CANCELLED"), [cancelled])
        XCTAssertEqual(try listed("COMPLETED"), [])
    }
}
