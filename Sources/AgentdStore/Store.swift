import AgentdBase
import AgentdCore
import CSQLite

/// The only code that speaks SQL. Opens the database (WAL), migrates it, writes each loop
/// turn's changes in one transaction, and loads everything back at start.
package final class Store {
    package enum SyncMode: String {
        case normal, full
    }

    package let path: String
    package let sync: SyncMode
    package let db: SQLiteConnection
    private let statements: Statements
    /// SQLite's automatic checkpoint would stall a commit on the loop thread for milliseconds;
    /// this second connection checkpoints instead, on a background thread (WAL allows it).
    private let checkpointer: SQLiteConnection
    /// About 40 MB of WAL: a page rewritten by many commits is copied to the database once.
    private let checkpointThresholdPages: Int32
    /// `--sync normal` only: syncs the WAL on a background thread (see WALSyncer).
    package let walSyncer: WALSyncer?
    /// Frames in the WAL after the last commit, as SQLite's wal hook reports them.
    fileprivate(set) var walPages: Int32 = 0
    private(set) var checkpointRunning = false
    /// Where a failure that stops nothing (a checkpoint that will be retried) is told: the
    /// daemon logs it. It may be called from the checkpoint thread.
    package var reportError: (String) -> Void = { _ in }

    /// `maxPageCount` caps the database file (SQLite's max_page_count): a test-only way to make
    /// the disk refuse writes, so that the crash-only path can be exercised. `checkpointPages`
    /// (test-only) lowers the WAL size that starts a background checkpoint.
    package init(path: String, sync: SyncMode, maxPageCount: Int64? = nil, checkpointPages: Int32? = nil) throws {
        Store.configureSQLiteOnce
        self.path = path
        self.sync = sync
        checkpointThresholdPages = checkpointPages ?? 10000
        db = try SQLiteConnection(path: path)
        _ = agentd_sqlite3_no_checkpoint_on_close(db.handle)
        // Nothing may be written to a file that turns out not to be a sound database: check it
        // before the first write (switching a rollback-journal file to WAL rewrites its header,
        // and a migration writes too).
        do {
            try Store.checkBeforeWriting(db)
        } catch {
            throw SQLiteError(code: (error as? SQLiteError)?.code ?? 0,
                              message: "\(path) is not a usable SQLite database: \(error)")
        }
        try db.exec("PRAGMA journal_mode = WAL")
        try db.exec("PRAGMA synchronous = \(sync == .full ? "FULL" : "NORMAL")")
        try db.exec("PRAGMA busy_timeout = 5000")
        try Schema.migrate(db)
        if let maxPageCount { try db.exec("PRAGMA max_page_count = \(maxPageCount)") }
        statements = try Statements(db)
        // The schema's CHECK constraints (the original's: `status IN (...)`, `json_valid(...)` on
        // every JSON column) guard against writers that are not agentd. Ours writes statuses from
        // an enum and JSON its parser has validated; checking again cost about half of every
        // node row (SQLite 3.40 builds the IN list as an ephemeral B-tree per row it checks:
        // HeartbeatNode 60k -> 29k instructions a request under callgrind). The constraints stay
        // in the schema for other writers; this connection does not evaluate them.
        try db.exec("PRAGMA ignore_check_constraints = ON")
        // Foreign keys likewise: every parent the rows name exists in memory first, and a
        // deleted task's rows are deleted explicitly (`deleteTask`), in one pass per table
        // instead of a cascade that scanned the journal once per node of the task.
        try db.exec("PRAGMA foreign_keys = OFF")
        try db.exec("PRAGMA wal_autocheckpoint = 0")
        // When the WAL restarts after a complete checkpoint, give back what a burst made it grow.
        try db.exec("PRAGMA journal_size_limit = 67108864")
        checkpointer = try SQLiteConnection(path: path)
        try checkpointer.exec("PRAGMA busy_timeout = 5000")
        // A connection that has not read the file yet does not know it is in WAL mode, and its
        // checkpoints would do nothing.
        try checkpointer.exec("PRAGMA journal_mode = WAL")
        // An in-memory database has no WAL and nothing to lose to a power cut.
        walSyncer = sync == .normal && path != ":memory:" ? try WALSyncer(path: path) : nil
        sqlite3_wal_hook(db.handle, recordWALSize, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Reading the schema finds a file that is not SQLite at all. A database that agentd is
    /// about to change before it reads it whole (one not yet in WAL mode, or one with
    /// migrations to apply) is checked page by page first; one already current is read whole by
    /// the load, which finds damaged rows before anything is written.
    private static func checkBeforeWriting(_ db: SQLiteConnection) throws {
        _ = try db.scalar("SELECT COUNT(*) FROM sqlite_master")
        let pages = try db.scalar("PRAGMA page_count") ?? 0
        guard pages > 0 else { return }   // a new, empty file
        let journalMode = try db.text("PRAGMA journal_mode") ?? ""
        let current = (try? Schema.currentVersion(db)) ?? 0
        guard journalMode.lowercased() != "wal" || current < Schema.latestVersion else { return }
        let statement = try db.prepare("PRAGMA quick_check(4)")
        var findings: [String] = []
        while try statement.step() { findings.append(statement.string(0)) }
        guard findings == ["ok"] else {
            throw SQLiteError(code: 11, message: "the file is corrupt (integrity check: \(findings.joined(separator: "; ")))")
        }
    }

    /// Process-wide settings, before the first connection opens (SQLite refuses them later).
    private static let configureSQLiteOnce: Void = {
        _ = agentd_sqlite3_disable_memstatus()
    }()

    // MARK: - Checkpoints off the loop thread

    /// True when the WAL has grown past the threshold and no checkpoint is running.
    package var wantsCheckpoint: Bool { walPages >= checkpointThresholdPages && !checkpointRunning }

    /// Call on the loop thread before handing `checkpoint()` to a background thread.
    package func checkpointStarted() { checkpointRunning = true }

    /// Runs on a background thread and touches only the checkpointer connection. PASSIVE never
    /// blocks the serving connection's writers; what it cannot copy now, the next one will.
    package func checkpoint() {
        var logFrames: Int32 = 0, copied: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(checkpointer.handle, nil, SQLITE_CHECKPOINT_PASSIVE, &logFrames, &copied)
        if rc != SQLITE_OK && rc != SQLITE_BUSY {
            reportError("background checkpoint failed: \(checkpointer.lastMessage)")
        }
    }

    /// Call on the loop thread once `checkpoint()` has returned. SQLite starts the WAL over only
    /// when every frame in it has been copied, which a background checkpoint never sees while
    /// commits keep coming: left alone, the WAL would grow for as long as the load lasts, and
    /// every page lookup walks its whole index. So the loop thread copies the few frames written
    /// meanwhile (a short step: the bulk is already in the database file), and the next commit
    /// starts the WAL from its beginning.
    package func checkpointFinished() {
        checkpointRunning = false
        var logFrames: Int32 = 0, copied: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(db.handle, nil, SQLITE_CHECKPOINT_PASSIVE, &logFrames, &copied)
        if rc != SQLITE_OK && rc != SQLITE_BUSY {
            reportError("checkpoint catch-up failed: \(db.lastMessage)")
        }
    }

    package var schemaVersion: Int64 { (try? Schema.currentVersion(db)) ?? 0 }

    // MARK: - Writing

    /// Writes every change the Coordinator recorded since the last call, in one transaction, and
    /// commits; then tells the Coordinator, which starts a new change set. Throws if anything
    /// fails; the caller must then stop without answering the batch.
    package func commit(from coordinator: Coordinator) throws {
        guard !coordinator.changes.isEmpty else { return }
        // A fencing reservation is on disk before any token from it leaves, whatever the mode.
        // (PRAGMA synchronous takes effect when it is compiled, so it cannot be a prepared statement;
        // SQLite refuses it inside a transaction, so it brackets the BEGIN ... COMMIT.)
        let synced = sync == .normal && coordinator.changes.fencingReservationMoved
        if synced { try db.exec("PRAGMA synchronous = FULL") }
        defer { if synced { try? db.exec("PRAGMA synchronous = NORMAL") } }
        try statements.begin.run()
        do {
            try write(coordinator.changes, from: coordinator)
            try statements.commit.run()
        } catch {
            try? statements.rollback.run()
            throw error
        }
        coordinator.didCommit()
    }

    private func write(_ changes: ChangeSet, from coordinator: Coordinator) throws {
        for slot in changes.newTasks {
            guard let task = coordinator.task(slot: slot) else { continue }
            let s = statements.insertTask
            s.bind(1, uuid: task.id)
            s.bind(2, text: task.goal)
            s.bind(3, utf8: task.context)
            var created: [UInt8] = []
            ISOTime.append(unixMs: task.createdAtMs, to: &created)
            s.bind(4, utf8: created)
            try s.run()
        }
        for (slot, range) in changes.newNodes {
            guard let task = coordinator.task(slot: slot) else { continue }
            for index in range {
                try insertNode(index, of: task)
            }
        }
        for ref in changes.dirtyNodes {
            guard let task = coordinator.task(slot: ref.task), task.nodes[Int(ref.index)].persist == .dirty else { continue }
            try updateNode(ref.index, of: task)
        }
        for (slot, index) in changes.newEvents {
            guard let task = coordinator.task(slot: slot) else { continue }
            let event = task.events[Int(index)]
            let s = statements.insertEvent
            s.bind(1, uuid: event.id)
            s.bind(2, uuid: task.id)
            s.bind(3, uuid: task.nodes[Int(event.node)].id)
            s.bind(4, text: event.actionType)
            s.bind(5, utf8: event.payload)
            var timestamp: [UInt8] = []
            ISOTime.append(unixMs: event.timestampMs, to: &timestamp)
            s.bind(6, utf8: timestamp)
            s.bind(7, event.seq)
            try s.run()
        }
        for slot in changes.dirtyTasks {
            guard let task = coordinator.task(slot: slot) else { continue }
            let s = statements.updateTask
            s.bind(1, task.cancelled ? 1 : 0)
            s.bind(2, uuid: task.id)
            try s.run()
        }
        if changes.fencingReservationMoved {
            let s = statements.saveCounter
            s.bind(1, text: "fencing_token")
            s.bind(2, coordinator.fencingReserved)
            try s.run()
        }
        for (key, wasOnDisk) in changes.dirtyLocks {
            if let lock = coordinator.lock(key: key) {
                try upsertLock(lock)
            } else if wasOnDisk {
                let s = statements.deleteLock
                s.bind(1, text: key.text)
                try s.run()
            }
        }
        // Nodes, events and locks of a deleted task go with it: what ON DELETE CASCADE would
        // do, written out (this connection does not enforce foreign keys). Events by their
        // primary key: event_journal has no index by task.
        for id in changes.deletedEvents {
            let s = statements.deleteEvent
            s.bind(1, uuid: id)
            try s.run()
        }
        for id in changes.deletedTasks {
            for s in statements.deleteTaskRows {
                s.bind(1, uuid: id)
                try s.run()
            }
        }
    }

    private func insertNode(_ index: Int32, of task: TaskRecord) throws {
        let node = task.nodes[Int(index)]
        let s = statements.insertNode
        s.bind(1, uuid: node.id)
        s.bind(2, uuid: task.id)
        var dependencies: [UInt8] = [UInt8(ascii: "[")]
        for (offset, dependency) in node.dependencies.enumerated() {
            if offset > 0 { dependencies.append(UInt8(ascii: ",")) }
            dependencies.appendQuotedUUID(task.nodes[Int(dependency)].id)
        }
        dependencies.append(UInt8(ascii: "]"))
        s.bind(3, utf8: dependencies)
        s.bind(4, utf8: node.payloadSchema)
        s.bind(5, node.maxAttempts > 0 ? Int64(node.maxAttempts) : nil)
        bindMutableColumns(of: node, to: s, from: 6)
        s.bind(15, text: node.name)
        try s.run()
    }

    private func updateNode(_ index: Int32, of task: TaskRecord) throws {
        let node = task.nodes[Int(index)]
        let s = statements.updateNode
        bindMutableColumns(of: node, to: s, from: 1)
        s.bind(10, uuid: node.id)
        try s.run()
    }

    /// status, result_payload, acquired_at, lease_id, lease_owner, lease_expires_at, updated_at,
    /// lease_expires_at_ms, attempts: the columns that change over a node's life, in that order.
    private func bindMutableColumns(of node: Node, to s: Statement, from first: Int32) {
        s.bind(first, staticText: node.status.staticName)
        s.bind(first + 1, utf8: node.result)
        s.bind(first + 2, node.lease?.acquiredAtSecs)
        s.bind(first + 3, uuid: node.lease?.id)
        s.bind(first + 4, text: node.lease?.owner)
        s.bind(first + 5, node.lease.map { $0.expiresAtMs / 1000 })
        s.bind(first + 6, node.updatedAtSecs)
        s.bind(first + 7, node.lease?.expiresAtMs)
        s.bind(first + 8, Int64(node.attempts))
    }

    private func upsertLock(_ lock: ResourceLock) throws {
        let s = statements.upsertLock
        s.bind(1, text: lock.key)
        s.bind(2, uuid: lock.leaseId)
        s.bind(3, text: lock.owner)
        s.bind(4, text: lock.provider)
        s.bind(5, uuid: lock.taskId)
        s.bind(6, uuid: lock.nodeId)
        s.bind(7, utf8: lock.metadata)
        s.bind(8, lock.acquiredAtSecs)
        s.bind(9, lock.expiresAtMs / 1000)
        s.bind(10, lock.updatedAtSecs)
        s.bind(11, lock.expiresAtMs)
        s.bind(12, lock.fencingToken)
        try s.run()
    }
}

/// SQLite calls this after each commit on the serving connection, on the loop thread.
private let recordWALSize: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 = {
    context, _, _, pages in
    Unmanaged<Store>.fromOpaque(context!).takeUnretainedValue().walPages = pages
    return SQLITE_OK
}

/// Every statement of the write path, prepared once.
private struct Statements {
    package let begin, commit, rollback: Statement
    package let insertTask, insertNode, updateNode, insertEvent, upsertLock, deleteLock: Statement
    package let updateTask, saveCounter: Statement
    /// One journal event, by its id.
    package let deleteEvent: Statement
    /// A deleted task's nodes, locks and its own row, in that order.
    package let deleteTaskRows: [Statement]

    package init(_ db: SQLiteConnection) throws {
        begin = try db.prepare("BEGIN")
        commit = try db.prepare("COMMIT")
        rollback = try db.prepare("ROLLBACK")
        insertTask = try db.prepare("INSERT INTO global_tasks (id, goal, context, created_at) VALUES (?1, ?2, ?3, ?4)")
        insertNode = try db.prepare("""
            INSERT INTO dag_nodes (id, task_id, dependencies, payload_schema, max_attempts,
                status, result_payload, acquired_at, lease_id, lease_owner, lease_expires_at, updated_at,
                lease_expires_at_ms, attempts, name)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
            """)
        updateNode = try db.prepare("""
            UPDATE dag_nodes SET status = ?1, result_payload = ?2, acquired_at = ?3, lease_id = ?4,
                lease_owner = ?5, lease_expires_at = ?6, updated_at = ?7, lease_expires_at_ms = ?8, attempts = ?9
            WHERE id = ?10
            """)
        insertEvent = try db.prepare("""
            INSERT INTO event_journal (id, task_id, node_id, action_type, payload, timestamp, seq)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
            """)
        upsertLock = try db.prepare("""
            INSERT OR REPLACE INTO resource_locks (resource_key, lease_id, owner, provider, task_id, node_id,
                metadata, acquired_at, lease_expires_at, updated_at, lease_expires_at_ms, fencing_token)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
            """)
        deleteLock = try db.prepare("DELETE FROM resource_locks WHERE resource_key = ?1")
        updateTask = try db.prepare("UPDATE global_tasks SET cancelled = ?1 WHERE id = ?2")
        deleteEvent = try db.prepare("DELETE FROM event_journal WHERE id = ?1")
        deleteTaskRows = [
            try db.prepare("DELETE FROM dag_nodes WHERE task_id = ?1"),
            try db.prepare("DELETE FROM resource_locks WHERE task_id = ?1"),
            try db.prepare("DELETE FROM global_tasks WHERE id = ?1"),
        ]
        saveCounter = try db.prepare("INSERT OR REPLACE INTO agentd_counters (name, value) VALUES (?1, ?2)")
    }
}
