import AgentdBase
import AgentdCore
import CSQLite
import Glibc

/// A failed SQLite call, with SQLite's own message.
package struct SQLiteError: Error, CustomStringConvertible {
    package var code: Int32
    package var message: String
    package var description: String { message }
}

/// SQLite copies bound bytes at once, so callers may pass temporary buffers.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
/// Bound for empty text, whose buffer may have no address.
private let emptyText: UnsafePointer<CChar> = UnsafePointer(strdup("")!)

/// One SQLite connection. Only the Store uses it.
package final class SQLiteConnection {
    package let handle: OpaquePointer

    package init(path: String, readOnly: Bool = false) throws {
        var db: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc, message: "\(path): \(message)")
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
    }

    deinit { sqlite3_close_v2(handle) }

    package var lastMessage: String { String(cString: sqlite3_errmsg(handle)) }

    package func exec(_ sql: String) throws {
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw SQLiteError(code: rc, message: lastMessage) }
    }

    package func prepare(_ sql: String) throws -> Statement {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw SQLiteError(code: rc, message: "\(lastMessage) in: \(sql)") }
        return Statement(handle: statement, connection: self)
    }

    /// The single text a query answers (or nil when it answers no row or NULL).
    package func text(_ sql: String) throws -> String? {
        let statement = try prepare(sql)
        guard try statement.step(), !statement.isNull(0) else { return nil }
        return statement.string(0)
    }

    /// The single integer a query answers (or nil when it answers no row or NULL).
    package func scalar(_ sql: String) throws -> Int64? {
        let statement = try prepare(sql)
        guard try statement.step(), !statement.isNull(0) else { return nil }
        return statement.int64(0)
    }
}

/// A prepared statement, reused: bind by index, step, reset.
package final class Statement {
    package let handle: OpaquePointer
    unowned let connection: SQLiteConnection

    /// A buffer per parameter that text is copied into and bound from without SQLite copying it
    /// again (SQLITE_STATIC): a transient binding costs SQLite a malloc when bound and a free
    /// when the next value replaces it. A buffer stays valid until the value is bound again or
    /// the statement is finalized, which is what SQLITE_STATIC asks.
    private var scratch: [UnsafeMutablePointer<UInt8>?]
    private var scratchCapacity: [Int]
    /// Longer values are bound transient, so that one huge payload does not stay allocated.
    private static let scratchLimit = 4096

    package init(handle: OpaquePointer, connection: SQLiteConnection) {
        self.handle = handle
        self.connection = connection
        let parameters = Int(sqlite3_bind_parameter_count(handle)) + 1
        scratch = Array(repeating: nil, count: parameters)
        scratchCapacity = Array(repeating: 0, count: parameters)
    }

    deinit {
        sqlite3_finalize(handle)
        for buffer in scratch { buffer?.deallocate() }
    }

    /// The parameter's own buffer, at least `count` bytes long.
    private func scratchBuffer(_ index: Int32, count: Int) -> UnsafeMutablePointer<UInt8> {
        let i = Int(index)
        if let buffer = scratch[i], scratchCapacity[i] >= count { return buffer }
        scratch[i]?.deallocate()
        let capacity = max(64, count)
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        scratch[i] = buffer
        scratchCapacity[i] = capacity
        return buffer
    }

    /// Binds `count` bytes at `bytes` as text, copied into the parameter's buffer.
    private func bindCopied(_ index: Int32, _ bytes: UnsafeRawPointer?, count: Int) {
        guard count > 0, let bytes else {
            sqlite3_bind_text(handle, index, emptyText, 0, nil)
            return
        }
        guard count <= Statement.scratchLimit, Int(index) < scratch.count else {
            sqlite3_bind_text(handle, index, bytes.assumingMemoryBound(to: CChar.self), Int32(count), transient)
            return
        }
        let buffer = scratchBuffer(index, count: count)
        buffer.update(from: bytes.assumingMemoryBound(to: UInt8.self), count: count)
        sqlite3_bind_text(handle, index, UnsafeRawPointer(buffer).assumingMemoryBound(to: CChar.self), Int32(count), nil)
    }

    /// Binds text that lives as long as the program (a StaticString), without a copy.
    package func bind(_ index: Int32, staticText text: StaticString) {
        sqlite3_bind_text(handle, index, UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self),
                          Int32(text.utf8CodeUnitCount), nil)
    }

    package func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(handle, index, value) }
    package func bind(_ index: Int32, _ value: Int64?) {
        if let value { sqlite3_bind_int64(handle, index, value) } else { sqlite3_bind_null(handle, index) }
    }
    package func bind(_ index: Int32, text: String?) {
        guard var text else { sqlite3_bind_null(handle, index); return }
        text.withUTF8 { bytes in bindCopied(index, bytes.baseAddress, count: bytes.count) }
    }

    package func bind(_ index: Int32, utf8 bytes: [UInt8]?) {
        guard let bytes else { sqlite3_bind_null(handle, index); return }
        bytes.withUnsafeBytes { raw in bindCopied(index, raw.baseAddress, count: raw.count) }
    }

    package func bind(_ index: Int32, uuid: UUID128?) {
        guard let uuid else { sqlite3_bind_null(handle, index); return }
        guard Int(index) < scratch.count else {
            var text: [UInt8] = []
            uuid.append(to: &text)
            bind(index, utf8: text)
            return
        }
        let buffer = scratchBuffer(index, count: 36)
        uuid.write(to: buffer)
        sqlite3_bind_text(handle, index, UnsafeRawPointer(buffer).assumingMemoryBound(to: CChar.self), 36, nil)
    }

    /// Runs the statement once for its effect.
    package func run() throws {
        defer { sqlite3_reset(handle) }
        let rc = sqlite3_step(handle)
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else {
            throw SQLiteError(code: rc, message: connection.lastMessage)
        }
    }

    /// Steps to the next row: true when there is one. Call reset() when done.
    package func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw SQLiteError(code: rc, message: connection.lastMessage)
    }

    package func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    package func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    package func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    package func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }

    /// The column's text as bytes (valid only until the next step).
    package func bytes(_ column: Int32) -> UnsafeRawBufferPointer {
        guard let pointer = sqlite3_column_text(handle, column) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: pointer, count: Int(sqlite3_column_bytes(handle, column)))
    }

    package func string(_ column: Int32) -> String {
        String(decoding: bytes(column), as: UTF8.self)
    }

    package func optionalString(_ column: Int32) -> String? { isNull(column) ? nil : string(column) }

    package func uuid(_ column: Int32) -> UUID128? {
        isNull(column) ? nil : UUID128(parsing: bytes(column))
    }
}
