import CSQLite
import Glibc

/// `agentd backup`: a consistent copy of a live database, made from another process with
/// SQLite's online backup API.
///
/// The daemon keeps its database in WAL mode, where a reader never blocks the writer. The copy
/// reads from one read transaction held for its whole length, so it is one snapshot: every
/// transaction committed before it began, nothing after (a backup stepped without it would start
/// over each time the daemon commits). The pages are copied a few hundred at a time with a short
/// pause between steps, so the copy's I/O never crowds the daemon's commits; the daemon's PASSIVE
/// checkpoints simply leave the frames the snapshot still needs for later.
package enum Backup {
    package struct Outcome {
        package var pages: Int
        package var pageSize: Int
        package var steps: Int
        /// The longest single step, in microseconds: how long the copy held SQLite's locks at once.
        package var longestStepMicros: UInt64
    }

    /// Copies the database at `source` into a new file at `destination` (which must not exist),
    /// then checks the copy. On failure the partial copy is removed.
    package static func copy(from source: String, to destination: String, pagesPerStep: Int32 = 256,
                             pauseMicros: UInt32 = 2_000) throws -> Outcome {
        var status = stat()
        guard stat(source, &status) == 0 else {
            throw SQLiteError(code: SQLITE_CANTOPEN, message: "no database at \(source)")
        }
        let reader = try SQLiteConnection(path: source, readOnly: true)
        try reader.exec("PRAGMA busy_timeout = 5000")
        // The snapshot: a read transaction, started by a read, held until the copy is done.
        try reader.exec("BEGIN")
        defer { try? reader.exec("COMMIT") }
        _ = try reader.scalar("SELECT count(*) FROM sqlite_master")

        let writer = try SQLiteConnection(path: destination)
        var finished = false
        defer { if !finished { unlink(destination); unlink(destination + "-journal") } }
        guard let backup = sqlite3_backup_init(writer.handle, "main", reader.handle, "main") else {
            throw SQLiteError(code: sqlite3_errcode(writer.handle), message: "backup: \(writer.lastMessage)")
        }
        var outcome = Outcome(pages: 0, pageSize: Int(try reader.scalar("PRAGMA page_size") ?? 4096),
                              steps: 0, longestStepMicros: 0)
        var rc: Int32 = SQLITE_OK
        while true {
            let started = monotonicMicros()
            rc = sqlite3_backup_step(backup, pagesPerStep)
            outcome.longestStepMicros = max(outcome.longestStepMicros, monotonicMicros() - started)
            outcome.steps += 1
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED else { break }
            usleep(pauseMicros)
        }
        outcome.pages = Int(sqlite3_backup_pagecount(backup))
        let finishRC = sqlite3_backup_finish(backup)
        guard rc == SQLITE_DONE, finishRC == SQLITE_OK else {
            throw SQLiteError(code: rc == SQLITE_DONE ? finishRC : rc, message: "backup: \(writer.lastMessage)")
        }
        let check = try writer.text("PRAGMA quick_check(1)") ?? ""
        guard check == "ok" else {
            throw SQLiteError(code: SQLITE_CORRUPT, message: "the copy at \(destination) fails its check: \(check)")
        }
        finished = true
        return outcome
    }

    private static func monotonicMicros() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }
}
