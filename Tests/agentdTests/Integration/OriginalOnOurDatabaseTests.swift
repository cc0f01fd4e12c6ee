// What happens when the original is run on a database that agentd wrote. The original itself
// is not built here: its own SQL statements (taken from its source, db.rs of v0.1.2) are run
// on our database, as it would run them, and then agentd is started on the result.

import XCTest
import Foundation
@testable import AgentdStore

final class OriginalOnOurDatabaseTests: FeatureTestCase {

    func testTheOriginalsStatementsWorkOnOurSchemaAndWeReadTheirResult() throws {
        let daemon = try makeDaemon()
        var client = try connect(daemon)
        let n = itUUID()
        let taskID = try registerTask(client, nodes: [["id": n, "name": "ours", "max_attempts": 3]])
        let held = try client.call("AcquireNextNode", ["task_id": taskID, "lease_ttl_secs": 600])
        let leaseID = try XCTUnwrap(held["lease_id"].string)
        let lock = try client.call("AcquireResourceLock", ["resource_key": "k", "ttl_secs": 600])
        try daemon.stop()

        var secondsNow: Int64 = 0
        let otherTask = itUUID(), otherNode = itUUID()
        do {   // the connection closes at the end of the scope
            let db = try SQLiteConnection(path: daemon.dbPath)
            // Its start-up: versions 1 and 2 are recorded, so it applies nothing; it reports the
            // highest version recorded as its schema_version.
            XCTAssertEqual(try db.scalar("SELECT COUNT(*) FROM agentd_schema_migrations WHERE version IN (1, 2)"), 2)
            XCTAssertEqual(try db.scalar("SELECT MAX(version) FROM agentd_schema_migrations"), 6)
            // Its writes: a new task and node (only its own columns), a heartbeat of our lease and a
            // lock renewal, both of which set only its whole-second column.
            try db.exec("INSERT INTO global_tasks (id, goal, context) VALUES ('\(otherTask)', 'theirs', '{\"b\":1,\"a\":2}')")
            try db.exec("""
                INSERT INTO dag_nodes (id, task_id, status, dependencies, payload_schema)
                VALUES ('\(otherNode)', '\(otherTask)', 'PENDING', '[]', '{}')
                """)
            try db.exec("""
                UPDATE dag_nodes SET acquired_at = unixepoch('now'), lease_expires_at = unixepoch('now') + 5,
                    updated_at = unixepoch('now')
                WHERE task_id = '\(taskID)' AND id = '\(n)' AND status = 'RUNNING' AND lease_id = '\(leaseID)'
                """)
            XCTAssertEqual(try db.scalar("SELECT changes()"), 1)
            try db.exec("""
                UPDATE resource_locks SET lease_expires_at = unixepoch('now') + 7, updated_at = unixepoch('now')
                WHERE resource_key = 'k' AND lease_id = '\(lock["lease_id"].string!)'
                """)
            try db.exec("""
                INSERT INTO event_journal (id, task_id, node_id, action_type, payload)
                VALUES ('\(itUUID())', '\(taskID)', '\(n)', 'COMMIT_EVENT', '{"from":"original"}')
                """)
            // Its reads of the tables answer as before (the dropped indexes cost speed, not rows).
            XCTAssertEqual(try db.scalar("SELECT COUNT(*) FROM dag_nodes WHERE task_id = '\(otherTask)' AND status = 'PENDING'"), 1)
            secondsNow = Int64(unixNow())
        }

        try daemon.start()
        client = try connect(daemon)
        let status = try taskStatus(client, taskID)
        let ours = node(status, n)
        let expires = try XCTUnwrap(ours["lease_expires_at"].int)
        XCTAssertLessThanOrEqual(abs(Int64(expires) - (secondsNow + 5)), 2,
                                 "the original's renewal (its column) wins over our stale millisecond one: \(ours)")
        XCTAssertEqual(ours["name"].string, "ours")
        XCTAssertEqual(ours["max_attempts"].int, 3)
        let listed = try XCTUnwrap(try client.call("ListResourceLocks")["locks"].array?.first)
        XCTAssertLessThanOrEqual(abs(Int64(listed["lease_expires_at"].int ?? 0) - (secondsNow + 7)), 2, "\(listed)")
        let theirs = try taskStatus(client, otherTask)
        XCTAssertTrue(node(theirs, otherNode)["name"].isNull)
        XCTAssertEqual(node(theirs, otherNode)["attempts"].int, 0)
        XCTAssertEqual(try acquire(client, otherTask)["node_id"].string, otherNode)
        let events = try client.call("ReadEvents", ["task_id": taskID])["events"].array ?? []
        XCTAssertEqual(events.last?["action_type"].string, "COMMIT_EVENT")
        XCTAssertEqual(events.last?["seq"].int, events.count, "an event the original wrote gets its seq from its place")
    }
}
