import CSQLite

/// Syncs the WAL to disk off the loop thread, for `--sync normal`: commits there do not wait for
/// the disk, and this is what bounds how much of them a power cut can take.
///
/// It holds a connection of its own, which nothing else uses: its handle on the WAL file is
/// touched by one background job at a time, while the serving connection keeps writing through
/// its own handle. A sync of any handle makes the whole file durable (the kernel's page cache
/// is per file, and so are the power-loss simulator's pending writes).
package final class WALSyncer {
    private let connection: SQLiteConnection
    private let wal: UnsafeMutablePointer<sqlite3_file>

    package init(path: String) throws {
        connection = try SQLiteConnection(path: path)
        _ = agentd_sqlite3_no_checkpoint_on_close(connection.handle)
        try connection.exec("PRAGMA busy_timeout = 5000")
        // Reading the file in WAL mode opens the connection's WAL handle, which stays open.
        try connection.exec("PRAGMA journal_mode = WAL")
        wal = try WALSyncer.walFile(of: connection)
    }

    /// Runs on a background thread: the WAL as written so far goes to disk. Nil when it did, else
    /// what failed.
    package func sync() -> SQLiteError? {
        let rc = WALSyncer.sync(wal)
        return rc == SQLITE_OK ? nil : SQLiteError(code: rc, message: "syncing the WAL failed (SQLite code \(rc))")
    }

    /// The connection's open WAL file (SQLite's journal pointer, in WAL mode).
    package static func walFile(of connection: SQLiteConnection) throws -> UnsafeMutablePointer<sqlite3_file> {
        var file: UnsafeMutablePointer<sqlite3_file>?
        let rc = sqlite3_file_control(connection.handle, "main", SQLITE_FCNTL_JOURNAL_POINTER, &file)
        guard rc == SQLITE_OK, let file, file.pointee.pMethods != nil else {
            throw SQLiteError(code: rc == SQLITE_OK ? SQLITE_ERROR : rc, message: "the WAL file is not open")
        }
        return file
    }

    package static func sync(_ file: UnsafeMutablePointer<sqlite3_file>) -> Int32 {
        file.pointee.pMethods.pointee.xSync(file, SQLITE_SYNC_NORMAL)
    }
}

extension Store {
    /// On the loop thread, through the serving connection's own WAL handle: at a clean stop, so
    /// that what the last turns committed does not wait for a background sync that will not come.
    package func syncWALNow() throws {
        let rc = WALSyncer.sync(try WALSyncer.walFile(of: db))
        guard rc == SQLITE_OK else { throw SQLiteError(code: rc, message: "syncing the WAL failed (SQLite code \(rc))") }
    }
}
