// Integration: a database written by the Rust original (schema version 2) opens in ours
// with its state.

import XCTest
import Foundation

final class LegacyDatabaseTests: IntegrationTestCase {

    /// The original's schema, version 2, as plain SQL.
    static let schemaV2 = """
    PRAGMA foreign_keys = ON;
    PRAGMA journal_mode = WAL;
    CREATE TABLE agentd_schema_migrations (
        version INTEGER PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TABLE global_tasks (
        id TEXT PRIMARY KEY NOT NULL,
        goal TEXT NOT NULL,
        context TEXT NOT NULL CHECK (json_valid(context)),
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TABLE dag_nodes (
        id TEXT PRIMARY KEY NOT NULL,
        task_id TEXT NOT NULL REFERENCES global_tasks(id) ON DELETE CASCADE,
        status TEXT NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
        dependencies TEXT NOT NULL CHECK (json_valid(dependencies) AND json_type(dependencies) = 'array'),
        payload_schema TEXT NOT NULL CHECK (json_valid(payload_schema)),
        result_payload TEXT CHECK (result_payload IS NULL OR json_valid(result_payload)),
        acquired_at INTEGER,
        lease_id TEXT,
        lease_owner TEXT,
        lease_expires_at INTEGER,
        updated_at INTEGER NOT NULL,
        UNIQUE(task_id, id)
    );
    CREATE TABLE event_journal (
        id TEXT PRIMARY KEY NOT NULL,
        task_id TEXT NOT NULL REFERENCES global_tasks(id) ON DELETE CASCADE,
        node_id TEXT NOT NULL REFERENCES dag_nodes(id) ON DELETE CASCADE,
        action_type TEXT NOT NULL,
        payload TEXT NOT NULL CHECK (json_valid(payload)),
        timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX idx_dag_nodes_task_status ON dag_nodes(task_id, status);
    CREATE INDEX idx_dag_nodes_running_timeout ON dag_nodes(status, acquired_at);
    CREATE INDEX idx_dag_nodes_lease_timeout ON dag_nodes(status, lease_expires_at);
    CREATE INDEX idx_event_journal_task_node ON event_journal(task_id, node_id, timestamp);
    CREATE TABLE resource_locks (
        resource_key TEXT PRIMARY KEY NOT NULL,
        lease_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        provider TEXT,
        task_id TEXT REFERENCES global_tasks(id) ON DELETE CASCADE,
        node_id TEXT,
        metadata TEXT NOT NULL CHECK (json_valid(metadata)),
        acquired_at INTEGER NOT NULL,
        lease_expires_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX idx_resource_locks_lease_timeout ON resource_locks(lease_expires_at);
    CREATE INDEX idx_resource_locks_owner ON resource_locks(owner);
    INSERT INTO agentd_schema_migrations (version, name, applied_at) VALUES
        (1, 'initial_state_engine', '2025-01-01T00:00:00.000Z'),
        (2, 'resource_locks', '2025-01-01T00:00:00.000Z');
    """

    /// Run SQL against a database file with the sqlite3 shell, or python3's sqlite3 module.
    func runSQL(_ sql: String, database: String, directory: String) throws {
        let script = "\(directory)/setup.sql"
        try sql.write(toFile: script, atomically: true, encoding: .utf8)
        let env = ProcessInfo.processInfo.environment
        let result: ITCommandResult
        if let sqlite3 = itWhich("sqlite3") {
            result = try itRun(sqlite3, ["-bail", database], environment: env, directory: directory, stdinPath: script)
        } else if let python = itWhich("python3") {
            let code = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(open(sys.argv[2]).read()); c.commit(); c.close()"
            result = try itRun(python, ["-c", code, database, script], environment: env, directory: directory)
        } else {
            throw ITError("neither sqlite3 nor python3 is installed: cannot build the legacy database")
        }
        guard result.exit == .exited(0) else {
            throw ITError("building the legacy database failed (\(result.exit)): \(result.stderr)\(result.stdout)")
        }
    }

    func testOriginalDatabaseOpensWithItsState() throws {
        let daemon = try makeDaemon(start: false)
        let taskID = itUUID(), doneNode = itUUID(), pendingNode = itUUID(), lease = itUUID(), eventID = itUUID()
        let now = Int(unixNow())
        let sql = Self.schemaV2 + """

        INSERT INTO global_tasks (id, goal, context, created_at)
            VALUES ('\(taskID)', 'written by the original', '{"from":"rust","n":[1,2]}', '2025-02-03T04:05:06.789Z');
        INSERT INTO dag_nodes (id, task_id, status, dependencies, payload_schema, result_payload,
                               acquired_at, lease_id, lease_owner, lease_expires_at, updated_at)
            VALUES ('\(doneNode)', '\(taskID)', 'COMPLETED', '[]', '{"kind":"first"}', '{"answer":42}',
                    \(now - 100), NULL, NULL, NULL, \(now - 50));
        INSERT INTO dag_nodes (id, task_id, status, dependencies, payload_schema, result_payload,
                               acquired_at, lease_id, lease_owner, lease_expires_at, updated_at)
            VALUES ('\(pendingNode)', '\(taskID)', 'PENDING', '["\(doneNode)"]', '{"kind":"second"}', NULL,
                    NULL, NULL, NULL, NULL, \(now - 50));
        INSERT INTO event_journal (id, task_id, node_id, action_type, payload, timestamp)
            VALUES ('\(eventID)', '\(taskID)', '\(doneNode)', 'COMPLETE_NODE', '{"result":{"answer":42}}', '2025-02-03T04:06:00.000Z');
        INSERT INTO resource_locks (resource_key, lease_id, owner, provider, task_id, node_id, metadata,
                                    acquired_at, lease_expires_at, updated_at)
            VALUES ('file:legacy.rs', '\(lease)', 'rust-agent', 'openai', '\(taskID)', NULL, '{"intent":"edit"}',
                    \(now - 10), \(now + 600), \(now - 10));
        """
        try runSQL(sql, database: daemon.dbPath, directory: daemon.directory)

        try daemon.start()
        let client = try connect(daemon)

        let metrics = try client.call("Metrics")
        XCTAssertGreaterThanOrEqual(metrics["database"]["schema_version"].int ?? 0, 2, "\(metrics)")
        XCTAssertEqual(metrics["database"]["total_tasks"].int, 1, "\(metrics)")
        XCTAssertEqual(metrics["database"]["total_nodes"].int, 2, "\(metrics)")

        let status = try taskStatus(client, taskID)
        XCTAssertEqual(status["task"]["goal"].string, "written by the original")
        XCTAssertEqual(status["task"]["created_at"].string, "2025-02-03T04:05:06.789Z")
        assertJSON(status["task"]["context"], #"{"from":"rust","n":[1,2]}"#)
        assertJSON(status["counts"], #"{"COMPLETED":1,"PENDING":1}"#)
        XCTAssertEqual((status["nodes"].array ?? []).map { $0["id"].string ?? "?" }, [doneNode, pendingNode])
        assertJSON(status["nodes"][0]["result_payload"], #"{"answer":42}"#)
        XCTAssertEqual(status["nodes"][0]["updated_at"].int, now - 50)

        let locks = try client.call("ListResourceLocks")["locks"]
        XCTAssertEqual(locks.count, 1, "\(locks)")
        XCTAssertEqual(locks[0]["resource_key"].string, "file:legacy.rs")
        XCTAssertEqual(locks[0]["lease_id"].string, lease)
        XCTAssertEqual(locks[0]["owner"].string, "rust-agent")
        XCTAssertEqual(locks[0]["provider"].string, "openai")
        XCTAssertEqual(locks[0]["task_id"].string, taskID)
        XCTAssertTrue(locks[0]["node_id"].isNull)
        assertJSON(locks[0]["metadata"], #"{"intent":"edit"}"#)
        XCTAssertEqual(locks[0]["acquired_at"].int, now - 10)
        XCTAssertEqual(locks[0]["lease_expires_at"].int, now + 600)
        XCTAssertTrue(try client.call("AcquireResourceLock", ["resource_key": "file:legacy.rs", "owner": "swift-agent"]).isNull,
                      "the legacy lock is still held")

        let acquired = try acquire(client, taskID, owner: "swift-agent")
        XCTAssertEqual(acquired["node_id"].string, pendingNode)
        assertJSON(acquired["context"]["completed_dependencies"],
                   itJSONText([["node_id": doneNode, "result_payload": ["answer": 42]]]))
        let journal = acquired["context"]["event_journal"].array ?? []
        XCTAssertEqual(journal.map { $0["id"].string ?? "?" }, [eventID], "\(acquired["context"]["event_journal"])")
        XCTAssertEqual(journal.first?["timestamp"].string, "2025-02-03T04:06:00.000Z")
        assertJSON(acquired["context"]["node"]["payload_schema"], #"{"kind":"second"}"#)

        _ = try complete(client, taskID, acquired, result: ["answer": 43])
        assertJSON(try taskStatus(client, taskID)["counts"], #"{"COMPLETED":2}"#)
        assertJSON(try client.call("ReleaseResourceLock", ["resource_key": "file:legacy.rs", "lease_id": lease]), #"{"ok":true}"#)

        // And it still opens after our migrations ran on it.
        client.close()
        XCTAssertEqual(try daemon.stop(), .exited(0))
        try daemon.start()
        let again = try connect(daemon)
        assertJSON(try taskStatus(again, taskID)["counts"], #"{"COMPLETED":2}"#)
        XCTAssertEqual(try again.call("ListResourceLocks")["locks"].count, 0)
    }
}
