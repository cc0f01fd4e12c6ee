// Over the socket: attempts and max_attempts, lease_ttl_secs, task status, BLOCKED,
// RetryNode, CancelTask, ListTasks, DeleteTask.

import XCTest
import Foundation

final class LifecycleTests: FeatureTestCase {

    /// n1 (max_attempts 2) <- n2 <- n3. Two expired leases (the second one taken by a parked
    /// acquirer woken by the expiry) make n1 FAILED, n2 and n3 BLOCKED, the task FAILED.
    /// RetryNode wakes a parked acquirer and the DAG then runs to the end.
    func testAttemptsExhaustedThenRetry() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let parked = try connect(daemon)
        let probe = try connect(daemon)
        let n1 = itUUID(), n2 = itUUID(), n3 = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(n1, maxAttempts: 2), nodeDef(n2, [n1]), nodeDef(n3, [n2])])

        var status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]["status"].string, "ACTIVE")
        XCTAssertEqual(node(status, n1)["attempts"].int, 0)
        XCTAssertEqual(node(status, n1)["max_attempts"].int, 2)
        XCTAssertTrue(node(status, n2)["max_attempts"].isNull, "no max_attempts = null: \(node(status, n2))")
        assertHasKeys(node(status, n2), IntegrationTestCase.nodeKeys + ["attempts", "max_attempts"], "node")

        let first = try client.call("AcquireNextNode", ["task_id": taskID, "lease_owner": "w1", "lease_ttl_secs": 1])
        XCTAssertEqual(first["node_id"].string, n1)
        XCTAssertEqual(first["context"]["node"]["attempts"].int, 1, "\(first["context"]["node"])")
        XCTAssertEqual(first["context"]["node"]["max_attempts"].int, 2)

        // A parked acquirer is woken when the lease expires.
        let secondID = try post(parked, "AcquireNextNode", ["task_id": taskID, "lease_owner": "w2", "lease_ttl_secs": 1,
                                                             "wait_ms": 10_000])
        let second = try answer(parked, id: secondID, timeout: 8)
        XCTAssertEqual(second["node_id"].string, n1)
        XCTAssertEqual(second["context"]["node"]["attempts"].int, 2, "\(second["context"]["node"])")
        XCTAssertNotEqual(second["lease_id"].string, first["lease_id"].string)

        try waitUntil("n1 is FAILED after its last attempt expired", timeout: 8) {
            try self.nodeStatus(client, taskID, n1) == "FAILED"
        }
        status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]["status"].string, "FAILED", "\(status["task"])")
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 2])
        XCTAssertEqual(status["task"]["blocked_nodes"].int, 2, "blocked_nodes")
        XCTAssertEqual(node(status, n2)["status"].string, "PENDING", "a BLOCKED node stays PENDING")
        assertJSON(node(status, n1)["result_payload"], #"{"error":"attempts exhausted","attempts":2}"#)
        XCTAssertEqual(node(status, n1)["attempts"].int, 2)
        XCTAssertTrue(node(status, n1)["lease_id"].isNull)
        XCTAssertTrue(try client.call("AcquireNextNode", ["task_id": taskID]).isNull)

        let expiries = try allEvents(client, taskID).filter { $0["action_type"].string == "LEASE_EXPIRED" }
        XCTAssertEqual(expiries.map { $0["payload"]["attempt"].int ?? -1 }, [1, 2], "\(expiries)")
        XCTAssertEqual(expiries.map { $0["payload"]["reason"].string ?? "?" }, ["timeout", "timeout"])
        XCTAssertEqual(expiries.map { $0["payload"]["lease_id"].string ?? "?" },
                       [first["lease_id"].string ?? "", second["lease_id"].string ?? ""])
        XCTAssertEqual(expiries.map { $0["payload"]["lease_owner"].string ?? "?" }, ["w1", "w2"])
        XCTAssertEqual(expiries.map { $0["node_id"].string ?? "?" }, [n1, n1])

        // RetryNode refuses a node that is not FAILED.
        try expectReason(client, "RetryNode", ["task_id": taskID, "node_id": n2], reason: "NODE_NOT_RUNNING",
                         message: "invalid state: node \(n2) cannot transition from PENDING to PENDING")
        try expectReason(client, "RetryNode", ["task_id": taskID, "node_id": itUUID()], reason: "NODE_NOT_FOUND")
        try expectReason(client, "RetryNode", ["task_id": itUUID(), "node_id": n1], reason: "TASK_NOT_FOUND")

        // A parked acquirer is woken by RetryNode.
        let thirdID = try post(parked, "AcquireNextNode", ["task_id": taskID, "lease_owner": "w3", "wait_ms": 10_000])
        try confirmParked(parked, probe: probe, "acquire on a FAILED task")
        assertJSON(try client.call("RetryNode", ["task_id": taskID, "node_id": n1]), #"{"ok":true}"#)
        let third = try answer(parked, id: thirdID, timeout: 5)
        XCTAssertEqual(third["node_id"].string, n1)
        XCTAssertEqual(third["context"]["node"]["attempts"].int, 1, "attempts restart from 0 after RetryNode")

        status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]["status"].string, "ACTIVE")
        XCTAssertEqual(counts(status), ["RUNNING": 1, "PENDING": 2])
        XCTAssertEqual(status["task"]["blocked_nodes"].int, 0, "nothing is blocked any more")

        _ = try complete(parked, taskID, third, result: ["n": 1])
        try expectReason(client, "RetryNode", ["task_id": taskID, "node_id": n1], reason: "NODE_NOT_RUNNING",
                         message: "invalid state: node \(n1) cannot transition from COMPLETED to PENDING")
        let next = try acquire(client, taskID)
        XCTAssertEqual(next["node_id"].string, n2, "the dependent is runnable after the retried node completed")
        _ = try complete(client, taskID, next, result: ["n": 2])
        _ = try complete(client, taskID, try acquire(client, taskID), result: ["n": 3])
        status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]["status"].string, "COMPLETED")
        XCTAssertEqual(counts(status), ["COMPLETED": 3])
    }

    /// FailNode makes a node FAILED even with attempts left; the task stays ACTIVE while an
    /// unrelated node can still run, and becomes FAILED when only blocked nodes are left.
    func testFailNodeBlocksDependentsAndTaskStatus() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let x = itUUID(), y = itUUID(), z = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(x, maxAttempts: 5), nodeDef(y, [x]), nodeDef(z)])

        let gotX = try acquire(client, taskID)
        XCTAssertEqual(gotX["node_id"].string, x)
        _ = try client.call("FailNode", ["task_id": taskID, "node_id": x, "lease_id": gotX["lease_id"].string!,
                                         "error_payload": ["boom": true]])
        var status = try taskStatus(client, taskID)
        XCTAssertEqual(node(status, x)["status"].string, "FAILED")
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 2])
        XCTAssertEqual(status["task"]["blocked_nodes"].int, 1, "blocked_nodes")
        XCTAssertEqual(status["task"]["status"].string, "ACTIVE", "z can still run")

        let gotZ = try acquire(client, taskID)
        XCTAssertEqual(gotZ["node_id"].string, z)
        status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]["status"].string, "ACTIVE", "z is RUNNING")
        _ = try complete(client, taskID, gotZ, result: [:] as [String: Any])
        status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]["status"].string, "FAILED")
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 1, "COMPLETED": 1])
        XCTAssertEqual(status["task"]["blocked_nodes"].int, 1, "blocked_nodes")

        // A node added on the FAILED node is BLOCKED at once; a runnable one makes the task ACTIVE.
        let w = itUUID(), v = itUUID()
        _ = try client.call("AddNodes", ["task_id": taskID, "nodes": [nodeDef(w, [y])]])
        status = try taskStatus(client, taskID)
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 2, "COMPLETED": 1])
        XCTAssertEqual(status["task"]["blocked_nodes"].int, 2, "blocked_nodes")
        XCTAssertEqual(status["task"]["status"].string, "FAILED")
        _ = try client.call("AddNodes", ["task_id": taskID, "nodes": [nodeDef(v, [z])]])
        status = try taskStatus(client, taskID)
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 3, "COMPLETED": 1])
        XCTAssertEqual(status["task"]["blocked_nodes"].int, 2, "blocked_nodes")
        XCTAssertEqual(status["task"]["status"].string, "ACTIVE", "v can run")

        // A task without nodes is ACTIVE.
        let empty = try registerTask(client, nodes: [])
        XCTAssertEqual(try taskStatus(client, empty)["task"]["status"].string, "ACTIVE")
    }

    /// lease_ttl_secs on AcquireNextNode and HeartbeatNode sets the lease length.
    func testLeaseTTLOnAcquireAndHeartbeat() throws {
        let daemon = try makeDaemon(["--node-timeout", "100"])
        let client = try connect(daemon)
        let n = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(n)])

        let got = try client.call("AcquireNextNode", ["task_id": taskID, "lease_ttl_secs": 7])
        let leaseID = try XCTUnwrap(got["lease_id"].string, "\(got)")
        var record = node(try taskStatus(client, taskID), n)
        // A deadline is the first whole second at or after now + ttl: ttl or ttl + 1 after
        // acquired_at (the floor of now).
        XCTAssertTrue([7, 8].contains(try XCTUnwrap(record["lease_expires_at"].int) - (try XCTUnwrap(record["acquired_at"].int))), "\(record)")
        XCTAssertEqual(got["lease_expires_at"].int, record["lease_expires_at"].int)
        let ctx = got["context"]["node"]
        XCTAssertTrue([7, 8].contains((ctx["lease_expires_at"].int ?? 0) - (ctx["acquired_at"].int ?? 0)), "\(ctx)")

        assertJSON(try client.call("HeartbeatNode", ["task_id": taskID, "node_id": n, "lease_id": leaseID,
                                                     "lease_ttl_secs": 20]), #"{"ok":true}"#)
        record = node(try taskStatus(client, taskID), n)
        XCTAssertTrue([20, 21].contains((record["lease_expires_at"].int ?? 0) - (record["acquired_at"].int ?? 0)), "\(record)")

        // Without it, the node timeout.
        _ = try client.call("HeartbeatNode", ["task_id": taskID, "node_id": n, "lease_id": leaseID])
        record = node(try taskStatus(client, taskID), n)
        XCTAssertTrue([100, 101].contains((record["lease_expires_at"].int ?? 0) - (record["acquired_at"].int ?? 0)), "\(record)")

        let other = try registerTask(client, nodes: [nodeDef(itUUID())])
        _ = try acquire(client, other)
        let otherRecord = try taskStatus(client, other)["nodes"][0]
        XCTAssertTrue([100, 101].contains((otherRecord["lease_expires_at"].int ?? 0) - (otherRecord["acquired_at"].int ?? 0)), "\(otherRecord)")
    }

    /// CancelTask: open nodes FAILED, leases end, parked acquirers get null, new work refused.
    func testCancelTask() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let parked = try connect(daemon)
        let probe = try connect(daemon)
        let a = itUUID(), b = itUUID(), c = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(a), nodeDef(b, [a]), nodeDef(c)])
        let gotA = try acquire(client, taskID)
        XCTAssertEqual(gotA["node_id"].string, a)
        let gotC = try acquire(client, taskID)
        XCTAssertEqual(gotC["node_id"].string, c)
        _ = try complete(client, taskID, gotC, result: ["c": true])
        let leaseA = gotA["lease_id"].string!

        let parkedID = try post(parked, "AcquireNextNode", ["task_id": taskID, "wait_ms": 10_000])
        try confirmParked(parked, probe: probe, "acquire with nothing runnable")

        assertJSON(try client.call("CancelTask", ["task_id": taskID]), #"{"ok":true}"#)
        let woken = try envelope(parked, id: parkedID, timeout: 5)
        XCTAssertTrue(woken["result"].exists && woken["result"].isNull, "a parked acquirer of a cancelled task gets null: \(woken)")

        let status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]["status"].string, "CANCELLED")
        XCTAssertEqual(counts(status), ["FAILED": 2, "COMPLETED": 1])
        for id in [a, b] {
            XCTAssertEqual(node(status, id)["status"].string, "FAILED")
            assertJSON(node(status, id)["result_payload"], #"{"error":"task cancelled"}"#, id)
            XCTAssertTrue(node(status, id)["lease_id"].isNull, "\(node(status, id))")
        }
        XCTAssertEqual(node(status, c)["status"].string, "COMPLETED")

        try expectReason(client, "HeartbeatNode", ["task_id": taskID, "node_id": a, "lease_id": leaseA],
                         reason: "NODE_NOT_RUNNING", message: "node \(a) for task \(taskID) is not RUNNING")
        try expectReason(client, "CompleteNode", ["task_id": taskID, "node_id": a, "lease_id": leaseA, "result_payload": 1],
                         reason: "NODE_NOT_RUNNING", message: "invalid state: node \(a) cannot transition from FAILED to COMPLETED")
        let closed = "invalid state: task \(taskID) is CANCELLED"
        try expectReason(client, "AcquireNextNode", ["task_id": taskID], reason: "TASK_CLOSED", message: closed)
        try expectReason(client, "AcquireNextNode", ["task_id": taskID, "wait_ms": 1000], reason: "TASK_CLOSED", message: closed)
        try expectReason(client, "AddNodes", ["task_id": taskID, "nodes": [nodeDef(itUUID())]], reason: "TASK_CLOSED")
        try expectReason(client, "RetryNode", ["task_id": taskID, "node_id": a], reason: "TASK_CLOSED")
        assertJSON(try client.call("CancelTask", ["task_id": taskID]), #"{"ok":true}"#, "CancelTask is idempotent")
        XCTAssertEqual(try taskStatus(client, taskID)["task"]["status"].string, "CANCELLED")
        try expectReason(client, "CancelTask", ["task_id": itUUID()], reason: "TASK_NOT_FOUND")
    }

    /// ListTasks pages newest first with next_after; a status filter.
    func testListTasksPaging() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        var tasks: [String] = []
        var nodes: [String] = []
        for i in 1...5 {
            let n = itUUID()
            nodes.append(n)
            tasks.append(try registerTask(client, goal: "goal \(i)", nodes: [nodeDef(n)]))
        }
        let newestFirst = Array(tasks.reversed())

        var seen: [String] = []
        var after: String? = nil
        var pages = 0
        repeat {
            var params: [String: Any] = ["limit": 2]
            if let after { params["after"] = after }
            let page = try client.call("ListTasks", params)
            let list = try XCTUnwrap(page["tasks"].array, "\(page)")
            XCTAssertLessThanOrEqual(list.count, 2)
            for task in list {
                assertHasKeys(task, ["id", "goal", "status", "created_at", "counts"], "listed task")
                XCTAssertTrue(itIsISOMillis(task["created_at"].string), "\(task)")
            }
            seen += list.compactMap { $0["id"].string }
            XCTAssertTrue(page["next_after"].exists, "next_after present: \(page)")
            after = page["next_after"].string
            if let after { XCTAssertEqual(after, list.last?["id"].string, "next_after is the last listed task") }
            pages += 1
        } while after != nil && pages < 10
        XCTAssertEqual(seen, newestFirst)
        XCTAssertEqual(pages, 3)

        let first = try client.call("ListTasks", ["limit": 2])
        XCTAssertEqual(first["tasks"][0]["goal"].string, "goal 5")
        XCTAssertEqual(first["tasks"][0]["status"].string, "ACTIVE")
        assertJSON(first["tasks"][0]["counts"], #"{"PENDING":1}"#)

        let all = try client.call("ListTasks", [:] as [String: Any])
        XCTAssertEqual(all["tasks"].array?.compactMap { $0["id"].string }, newestFirst)
        XCTAssertTrue(all["next_after"].isNull, "\(all)")

        // Complete task 3's only node.
        let got = try acquire(client, tasks[2])
        _ = try complete(client, tasks[2], got, result: [:] as [String: Any])
        let done = try client.call("ListTasks", ["status": "COMPLETED"])
        XCTAssertEqual(done["tasks"].array?.compactMap { $0["id"].string }, [tasks[2]])
        XCTAssertEqual(done["tasks"][0]["status"].string, "COMPLETED")
        assertJSON(done["tasks"][0]["counts"], #"{"COMPLETED":1}"#)
        XCTAssertTrue(done["next_after"].isNull)
        let active = try client.call("ListTasks", ["status": "ACTIVE", "limit": 10])
        XCTAssertEqual(active["tasks"].array?.compactMap { $0["id"].string }, newestFirst.filter { $0 != tasks[2] })
        let cancelled = try client.call("ListTasks", ["status": "CANCELLED"])
        XCTAssertEqual(cancelled["tasks"].count, 0)
    }

    /// DeleteTask: refused while ACTIVE; after CancelTask the task, its events and its locks
    /// go, durably.
    func testDeleteTask() throws {
        let daemon = try makeDaemon()
        var client = try connect(daemon)
        let n = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(n)])
        let keep = try registerTask(client, nodes: [nodeDef(itUUID())])
        XCTAssertFalse(try lock(client, "task:lock", ttl: 600, extra: ["task_id": taskID, "node_id": n]).isNull)
        XCTAssertFalse(try lock(client, "other:lock", ttl: 600, extra: ["task_id": keep]).isNull)
        XCTAssertFalse(try lock(client, "free:lock", ttl: 600).isNull)
        _ = try client.call("CommitEvent", ["task_id": taskID, "node_id": n, "payload": ["x": 1]])

        try expectReason(client, "DeleteTask", ["task_id": taskID], reason: "TASK_CLOSED",
                         message: "invalid state: task \(taskID) is ACTIVE; only a finished or cancelled task can be deleted")
        try expectReason(client, "DeleteTask", ["task_id": itUUID()], reason: "TASK_NOT_FOUND")

        assertJSON(try client.call("CancelTask", ["task_id": taskID]), #"{"ok":true}"#)
        assertJSON(try client.call("DeleteTask", ["task_id": taskID]), #"{"ok":true}"#)

        func checkGone() throws {
            try expectReason(client, "TaskStatus", ["task_id": taskID], reason: "TASK_NOT_FOUND",
                             message: "task not found: \(taskID)")
            try expectReason(client, "ReadEvents", ["task_id": taskID], reason: "TASK_NOT_FOUND")
            XCTAssertEqual(try listLocks(client).compactMap { $0["resource_key"].string }, ["free:lock", "other:lock"])
            let listed = try client.call("ListTasks", [:] as [String: Any])["tasks"].array?.compactMap { $0["id"].string }
            XCTAssertEqual(listed, [keep])
            XCTAssertEqual(try taskStatus(client, keep)["task"]["status"].string, "ACTIVE")
            let totals = try client.call("Metrics")["database"]
            XCTAssertEqual(totals["total_tasks"].int, 1, "\(totals)")
            XCTAssertEqual(totals["total_nodes"].int, 1, "\(totals)")
            XCTAssertEqual(totals["total_events"].int, 0, "\(totals)")
        }
        try checkGone()
        try expectReason(client, "DeleteTask", ["task_id": taskID], reason: "TASK_NOT_FOUND")

        daemon.crash()
        try daemon.start()
        client = try connect(daemon)
        try checkGone()

        // A COMPLETED task can be deleted too.
        let got = try acquire(client, keep)
        _ = try complete(client, keep, got, result: [:] as [String: Any])
        assertJSON(try client.call("DeleteTask", ["task_id": keep]), #"{"ok":true}"#)
        XCTAssertEqual(try listLocks(client).compactMap { $0["resource_key"].string }, ["free:lock"])
    }

    /// Attempts, max_attempts, FAILED/BLOCKED and CANCELLED survive a kill -9 and restart.
    func testLifecycleStateSurvivesRestart() throws {
        let daemon = try makeDaemon()
        var client = try connect(daemon)
        let n1 = itUUID(), n2 = itUUID()
        let running = try registerTask(client, nodes: [nodeDef(n1, maxAttempts: 2), nodeDef(n2, [n1])])
        _ = try acquire(client, running)

        let f1 = itUUID(), f2 = itUUID()
        let failed = try registerTask(client, nodes: [nodeDef(f1), nodeDef(f2, [f1])])
        let gotF = try acquire(client, failed)
        _ = try client.call("FailNode", ["task_id": failed, "node_id": f1, "lease_id": gotF["lease_id"].string!,
                                         "error_payload": "x"])
        let cancelled = try registerTask(client, nodes: [nodeDef(itUUID())])
        _ = try client.call("CancelTask", ["task_id": cancelled])

        daemon.crash()
        try daemon.start()
        client = try connect(daemon)

        var status = try taskStatus(client, running)
        XCTAssertEqual(node(status, n1)["attempts"].int, 1, "\(node(status, n1))")
        XCTAssertEqual(node(status, n1)["max_attempts"].int, 2)
        XCTAssertEqual(node(status, n1)["status"].string, "RUNNING")
        XCTAssertEqual(status["task"]["status"].string, "ACTIVE")

        status = try taskStatus(client, failed)
        XCTAssertEqual(status["task"]["status"].string, "FAILED")
        XCTAssertEqual(counts(status), ["FAILED": 1, "PENDING": 1])
        XCTAssertEqual(status["task"]["blocked_nodes"].int, 1, "blocked_nodes")

        status = try taskStatus(client, cancelled)
        XCTAssertEqual(status["task"]["status"].string, "CANCELLED")
        try expectReason(client, "AcquireNextNode", ["task_id": cancelled], reason: "TASK_CLOSED",
                         message: "invalid state: task \(cancelled) is CANCELLED")

        func listed(_ filter: String) throws -> [String] {
            try client.call("ListTasks", ["status": filter])["tasks"].array?.compactMap { $0["id"].string } ?? []
        }
        XCTAssertEqual(try listed("ACTIVE"), [running])
        XCTAssertEqual(try listed("FAILED"), [failed])
        XCTAssertEqual(try listed("CANCELLED"), [cancelled])
        XCTAssertEqual(try listed("COMPLETED"), [])
    }
}
