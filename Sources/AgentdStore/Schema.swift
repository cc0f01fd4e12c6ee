import AgentdBase
import AgentdCore
/// The database schema as numbered migrations. 1 and 2 are the original's, statement for
/// statement, so a database written by the Rust daemon opens here with its state; ours start
/// at 3. A migration is never edited once released: change the schema with a new one.
package enum Schema {
    package struct Migration {
        package var version: Int64
        package var name: String
        package var statements: [String]
    }

    package static let migrations: [Migration] = [
        Migration(version: 1, name: "initial_state_engine", statements: [
            """
            CREATE TABLE global_tasks (
                id TEXT PRIMARY KEY NOT NULL,
                goal TEXT NOT NULL,
                context TEXT NOT NULL CHECK (json_valid(context)),
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            )
            """,
            """
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
                updated_at INTEGER NOT NULL DEFAULT (unixepoch('now')),
                UNIQUE(task_id, id)
            )
            """,
            """
            CREATE TABLE event_journal (
                id TEXT PRIMARY KEY NOT NULL,
                task_id TEXT NOT NULL REFERENCES global_tasks(id) ON DELETE CASCADE,
                node_id TEXT NOT NULL REFERENCES dag_nodes(id) ON DELETE CASCADE,
                action_type TEXT NOT NULL,
                payload TEXT NOT NULL CHECK (json_valid(payload)),
                timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            )
            """,
            "CREATE INDEX idx_dag_nodes_task_status ON dag_nodes(task_id, status)",
            "CREATE INDEX idx_dag_nodes_running_timeout ON dag_nodes(status, acquired_at)",
            "CREATE INDEX idx_dag_nodes_lease_timeout ON dag_nodes(status, lease_expires_at)",
            "CREATE INDEX idx_event_journal_task_node ON event_journal(task_id, node_id, timestamp)",
        ]),
        Migration(version: 2, name: "resource_locks", statements: [
            """
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
            )
            """,
            "CREATE INDEX idx_resource_locks_expiry ON resource_locks(lease_expires_at)",
            "CREATE INDEX idx_resource_locks_owner ON resource_locks(owner)",
        ]),
        // Deadlines exact to the millisecond (the original's columns keep whole seconds),
        // attempts, fencing tokens and per-task event sequence numbers.
        Migration(version: 3, name: "exact_deadlines_attempts_fencing", statements: [
            "ALTER TABLE dag_nodes ADD COLUMN lease_expires_at_ms INTEGER",
            "ALTER TABLE dag_nodes ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE dag_nodes ADD COLUMN max_attempts INTEGER",
            "ALTER TABLE resource_locks ADD COLUMN lease_expires_at_ms INTEGER",
            "ALTER TABLE resource_locks ADD COLUMN fencing_token INTEGER",
            "ALTER TABLE event_journal ADD COLUMN seq INTEGER",
            """
            CREATE TABLE agentd_counters (
                name TEXT PRIMARY KEY NOT NULL,
                value INTEGER NOT NULL
            )
            """,
        ]),
        // Task lifecycle: a cancelled task refuses new leases across restarts.
        Migration(version: 4, name: "task_cancellation", statements: [
            "ALTER TABLE global_tasks ADD COLUMN cancelled INTEGER NOT NULL DEFAULT 0",
        ]),
        // The original answered requests by querying these indexes; agentd answers from memory
        // and reads the tables only whole, at start. Kept, they made every node update and lock
        // change rewrite three or four index entries (a HeartbeatNode moves a node in two of
        // them). The constraints (primary keys, UNIQUE(task_id, id)) stay.
        Migration(version: 5, name: "drop_query_indexes", statements: [
            "DROP INDEX IF EXISTS idx_dag_nodes_task_status",
            "DROP INDEX IF EXISTS idx_dag_nodes_running_timeout",
            "DROP INDEX IF EXISTS idx_dag_nodes_lease_timeout",
            "DROP INDEX IF EXISTS idx_event_journal_task_node",
            "DROP INDEX IF EXISTS idx_resource_locks_expiry",
            "DROP INDEX IF EXISTS idx_resource_locks_owner",
        ]),
        // Node names: the client's own name for a node, unique within its task (the
        // Coordinator checks that; rows the original writes leave it NULL).
        Migration(version: 6, name: "node_names", statements: [
            "ALTER TABLE dag_nodes ADD COLUMN name TEXT",
        ]),
    ]

    package static var latestVersion: Int64 { migrations.last!.version }

    /// Brings the database to the latest version, one transaction per migration. A database
    /// from before the migration table existed (the original's first releases) is adopted:
    /// its missing lease columns are added and versions 1 and 2 recorded as applied.
    package static func migrate(_ db: SQLiteConnection) throws {
        let hadMigrationTable = try tableExists(db, "agentd_schema_migrations")
        let hadCoreTables = try tableExists(db, "global_tasks") || tableExists(db, "dag_nodes")
        try db.exec("""
            CREATE TABLE IF NOT EXISTS agentd_schema_migrations (
                version INTEGER PRIMARY KEY NOT NULL,
                name TEXT NOT NULL,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            )
            """)
        if !hadMigrationTable && hadCoreTables {
            try adoptLegacy(db)
        }
        let applied = try appliedVersions(db)
        for migration in migrations where !applied.contains(migration.version) {
            try db.exec("BEGIN IMMEDIATE")
            do {
                for statement in migration.statements { try db.exec(statement) }
                let record = try db.prepare("INSERT INTO agentd_schema_migrations (version, name) VALUES (?, ?)")
                record.bind(1, migration.version)
                record.bind(2, text: migration.name)
                try record.run()
                try db.exec("COMMIT")
            } catch {
                try? db.exec("ROLLBACK")
                throw error
            }
        }
    }

    package static func currentVersion(_ db: SQLiteConnection) throws -> Int64 {
        try db.scalar("SELECT MAX(version) FROM agentd_schema_migrations") ?? 0
    }

    private static func appliedVersions(_ db: SQLiteConnection) throws -> Set<Int64> {
        let statement = try db.prepare("SELECT version FROM agentd_schema_migrations")
        var versions = Set<Int64>()
        while try statement.step() { versions.insert(statement.int64(0)) }
        return versions
    }

    private static func tableExists(_ db: SQLiteConnection, _ name: String) throws -> Bool {
        let statement = try db.prepare("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
        statement.bind(1, text: name)
        _ = try statement.step()
        return statement.int64(0) > 0
    }

    private static func columns(_ db: SQLiteConnection, _ table: String) throws -> Set<String> {
        let statement = try db.prepare("SELECT name FROM pragma_table_info('\(table)')")
        var names = Set<String>()
        while try statement.step() { names.insert(statement.string(0)) }
        return names
    }

    private static func adoptLegacy(_ db: SQLiteConnection) throws {
        for table in ["global_tasks", "dag_nodes", "event_journal"] where try !tableExists(db, table) {
            throw SQLiteError(code: 0, message: "cannot adopt legacy database: missing table \(table)")
        }
        let nodeColumns = try columns(db, "dag_nodes")
        for (column, type) in [("lease_id", "TEXT"), ("lease_owner", "TEXT"), ("lease_expires_at", "INTEGER")]
        where !nodeColumns.contains(column) {
            try db.exec("ALTER TABLE dag_nodes ADD COLUMN \(column) \(type)")
        }
        try db.exec("CREATE INDEX IF NOT EXISTS idx_dag_nodes_task_status ON dag_nodes(task_id, status)")
        try db.exec("CREATE INDEX IF NOT EXISTS idx_dag_nodes_running_timeout ON dag_nodes(status, acquired_at)")
        try db.exec("CREATE INDEX IF NOT EXISTS idx_dag_nodes_lease_timeout ON dag_nodes(status, lease_expires_at)")
        try db.exec("CREATE INDEX IF NOT EXISTS idx_event_journal_task_node ON event_journal(task_id, node_id, timestamp)")
        try db.exec("INSERT OR IGNORE INTO agentd_schema_migrations (version, name) VALUES (1, 'initial_state_engine')")
    }
}
