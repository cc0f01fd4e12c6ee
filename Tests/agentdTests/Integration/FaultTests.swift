// Integration: faults of the disk and of the database file, and a clean shutdown.
//
// - A database that refuses writes (SQLite's max_page_count, set through the test-only
//   AGENTD_TEST_MAX_PAGE_COUNT): the daemon exits non-zero without answering the batch that
//   failed, and a restart serves everything it acknowledged before.
// - A file at the database path that is not SQLite, or an SQLite file whose pages are
//   corrupt: a clear error at start, the file left byte for byte as it was.
// - SIGTERM and SIGINT: parked requests answered null, exit 0, socket removed, state kept;
//   also when the signal comes while the daemon is still starting.

import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class FaultTests: FeatureTestCase {

    // MARK: - A disk that refuses writes

    func testRefusedWriteExitsNonZeroWithoutAnsweringAndRestartKeepsAcknowledged() throws {
        let daemon = try makeDaemon()
        var client = try connect(daemon)
        var acknowledged: [String: String] = [:]   // goal -> task id
        for index in 0..<5 {
            let goal = "before-\(index)"
            acknowledged[goal] = try registerTask(client, goal: goal, nodes: [nodeDef(itUUID())])
        }
        client.close()
        XCTAssertEqual(try daemon.stop(), .exited(0))

        // Capped at (at least) its present size: small writes may still fit, a big one cannot.
        daemon.environment["AGENTD_TEST_MAX_PAGE_COUNT"] = "1"
        try daemon.start()
        client = try connect(daemon)
        var unanswered: [String] = []
        var closed = false
        for index in 0..<40 {
            let goal = "capped-\(index)"
            try client.sendLine(ITLineClient.requestLine(id: index, method: "RegisterTask", params: [
                "goal": goal, "context": ["pad": String(repeating: "x", count: 100 * index)]]))
            switch client.readLineOutcome(timeout: 10) {
            case .line(let bytes):
                let answer = try ITJSON.parse(bytes)
                guard let taskID = answer["result"]["task_id"].string else { throw ITError("unexpected answer \(answer)") }
                acknowledged[goal] = taskID
            case .eof(let pending):
                XCTAssertTrue(pending.isEmpty, "half an answer before the exit")
                unanswered.append(goal)
                closed = true
            case .failure(let code) where code == ECONNRESET:
                unanswered.append(goal)
                closed = true
            case let other:
                throw ITError("after \(goal): \(other)")
            }
            if closed { break }
        }
        if !closed {
            // Small writes all fitted: a batch too big for any free page, in one write.
            var batch = ""
            for index in 0..<3 {
                let goal = "batch-\(index)"
                unanswered.append(goal)
                batch += ITLineClient.requestLine(id: "batch-\(index)", method: "RegisterTask", params: [
                    "goal": goal, "context": ["pad": String(repeating: "y", count: 15_000)]]) + "\n"
            }
            try client.send(batch)
            let answers = try client.readUntilEOF(timeout: 10)
            for line in answers {
                // A request of the batch answered in an earlier turn is acknowledged after all.
                let answer = try ITJSON.parse(line)
                if let goal = answer["id"].string, let taskID = answer["result"]["task_id"].string {
                    acknowledged[goal] = taskID
                    unanswered.removeAll { $0 == goal }
                }
            }
        }
        XCTAssertFalse(unanswered.isEmpty, "no write was refused")
        XCTAssertEqual(try daemon.waitForExit(timeout: 10), .exited(1))
        XCTAssertTrue(daemon.currentStderr.contains("commit failed"), daemon.currentStderr)

        daemon.environment["AGENTD_TEST_MAX_PAGE_COUNT"] = nil
        try daemon.start()
        client = try connect(daemon)
        for (goal, taskID) in acknowledged {
            XCTAssertEqual(try taskStatus(client, taskID)["task"]["goal"].string, goal, "acknowledged task \(goal)")
        }
        let goals = Set((try client.call("ListTasks", ["limit": 1000])["tasks"].array ?? []).compactMap { $0["goal"].string })
        XCTAssertEqual(goals, Set(acknowledged.keys), "exactly the acknowledged tasks are there (unanswered: \(unanswered))")
    }

    // MARK: - A database file that is not one

    func testNonSQLiteFileAtDatabasePathIsRefusedAndLeftUntouched() throws {
        let daemon = try makeDaemon(start: false)
        var garbage = Array("this is not an SQLite database, it is someone's notes\n".utf8)
        for index in 0..<16_384 { garbage.append(UInt8(truncatingIfNeeded: index &* 131 &+ 17)) }
        try Data(garbage).write(to: URL(fileURLWithPath: daemon.dbPath))
        let before = try fileFacts(daemon.dbPath)

        try daemon.start(waitReady: false)
        let exit = try daemon.waitForExit(timeout: 10)
        XCTAssertNotEqual(exit, .exited(0))
        let stderr = daemon.currentStderr
        XCTAssertTrue(stderr.contains(daemon.dbPath) && stderr.contains("not a usable SQLite database"),
                      "the error should name the file and say what is wrong with it: \(stderr)")
        XCTAssertEqual(try fileFacts(daemon.dbPath), before, "the file was changed")
        XCTAssertTrue(try Data(contentsOf: URL(fileURLWithPath: daemon.dbPath)) == Data(garbage), "the file's bytes changed")
        for suffix in ["-wal", "-shm", "-journal"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.dbPath + suffix), "\(suffix) created beside it")
        }
    }

    /// agentd's own database (WAL mode) with its pages corrupted.
    func testCorruptDatabaseIsRefusedAndLeftUntouched() throws {
        try corruptDatabaseIsRefused(journalMode: "WAL")
    }

    /// The same in rollback-journal mode (as another SQLite program may leave a file): the
    /// daemon must not switch it to WAL, which rewrites the header, before finding it corrupt.
    func testCorruptRollbackJournalDatabaseIsRefusedAndLeftUntouched() throws {
        try corruptDatabaseIsRefused(journalMode: "DELETE")
    }

    private func corruptDatabaseIsRefused(journalMode: String, file: StaticString = #filePath, line: UInt = #line) throws {
        guard let python = itWhich("python3") else { throw XCTSkip("python3 is needed to checkpoint the database") }
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        for index in 0..<20 {
            _ = try registerTask(client, goal: "corrupt-\(index)", context: ["pad": String(repeating: "z", count: 3000)],
                                 nodes: [nodeDef(itUUID()), nodeDef(itUUID())])
        }
        client.close()
        XCTAssertEqual(try daemon.stop(), .exited(0), file: file, line: line)

        // Everything into the main file, then every page after the first (which holds the
        // schema) overwritten: the tables can no longer be read.
        let script = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); "
            + "c.execute('PRAGMA journal_mode=\(journalMode)'); c.close()"
        let result = try itRun(python, ["-c", script, daemon.dbPath], environment: ProcessInfo.processInfo.environment,
                               directory: daemon.directory)
        XCTAssertEqual(result.exit, .exited(0), result.stderr, file: file, line: line)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: daemon.dbPath)))
        let pageSize = Int(bytes[16]) << 8 | Int(bytes[17])
        guard bytes.count > 2 * pageSize else { throw ITError("a database of \(bytes.count) bytes cannot be corrupted this way") }
        for offset in pageSize..<bytes.count { bytes[offset] = UInt8(truncatingIfNeeded: offset &* 7 &+ 0x5A) }
        try Data(bytes).write(to: URL(fileURLWithPath: daemon.dbPath))
        let before = try fileFacts(daemon.dbPath)

        try daemon.start(waitReady: false)
        let exit = try daemon.waitForExit(timeout: 10)
        XCTAssertNotEqual(exit, .exited(0), file: file, line: line)
        let stderr = daemon.currentStderr
        XCTAssertTrue(stderr.contains("malformed") || stderr.contains("corrupt"), "a clear error is expected: \(stderr)",
                      file: file, line: line)
        XCTAssertTrue(stderr.contains(daemon.dbPath), "the error should name the database: \(stderr)", file: file, line: line)
        XCTAssertEqual(try fileFacts(daemon.dbPath), before, "the file was changed", file: file, line: line)
        let after = Array(try Data(contentsOf: URL(fileURLWithPath: daemon.dbPath)))
        let changed = zip(after, bytes).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
        XCTAssertTrue(after.count == bytes.count && changed.isEmpty,
                      "the file changed: \(after.count) bytes (was \(bytes.count)), bytes at offsets \(changed.prefix(10)) differ",
                      file: file, line: line)
    }

    private struct FileFacts: Equatable {
        var size: Int
        var modified: Int
        var modifiedNanos: Int
    }

    private func fileFacts(_ path: String) throws -> FileFacts {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ITError("stat \(path): \(String(cString: strerror(errno)))") }
        return FileFacts(size: Int(info.st_size), modified: Int(info.st_mtim.tv_sec), modifiedNanos: Int(info.st_mtim.tv_nsec))
    }

    // MARK: - Clean shutdown

    func testSIGTERMAnswersParkedRequestsCommitsAndRemovesTheSocket() throws {
        try shutDownCleanly(on: SIGTERM)
    }

    func testSIGINTAnswersParkedRequestsCommitsAndRemovesTheSocket() throws {
        try shutDownCleanly(on: SIGINT)
    }

    /// A signal that comes while the daemon is still starting (its socket claimed, the database
    /// loading) ends in the clean stop too: exit 0, the socket removed.
    func testSIGTERMAsSoonAsTheSocketAppearsStopsCleanly() throws {
        let daemon = try makeDaemon(start: false)
        try daemon.start(waitReady: false)
        guard let child = daemon.child else { throw ITError("no daemon process") }
        // Polled tightly: the signal must land while the fresh database is being created.
        var info = stat()
        let deadline = Date().addingTimeInterval(10)
        while lstat(daemon.socketPath, &info) != 0 {
            guard Date() < deadline, child.isRunning else { throw ITError("no socket; stderr:\n\(daemon.currentStderr)") }
            usleep(100)
        }
        child.signal(SIGTERM)
        XCTAssertEqual(try daemon.waitForExit(timeout: 10), .exited(0), daemon.currentStderr)
        XCTAssertNotEqual(lstat(daemon.socketPath, &info), 0, "the socket file is removed")
    }

    private func shutDownCleanly(on signal: Int32, file: StaticString = #filePath, line: UInt = #line) throws {
        let daemon = try makeDaemon()
        let holder = try connect(daemon)
        let nodeID = itUUID()
        let taskID = try registerTask(holder, nodes: [nodeDef(nodeID)])
        let lease = try acquire(holder, taskID, owner: "holder")
        let lock = try holder.call("AcquireResourceLock", ["resource_key": "file:shutdown", "ttl_secs": 600])

        // Three parked requests, on three connections.
        let acquirer = try connect(daemon)
        let acquireID = try post(acquirer, "AcquireNextNode", ["task_id": taskID, "wait_ms": 60_000])
        let locker = try connect(daemon)
        let lockID = try post(locker, "AcquireResourceLock", ["resource_key": "file:shutdown", "wait_ms": 60_000])
        // A write acknowledged just before the signal must survive it.
        let eventID = try holder.call("CommitEvent", ["task_id": taskID, "node_id": nodeID, "lease_id": lease["lease_id"].string!,
                                                      "payload": ["last": "words"]])["event_id"].string
        let reader = try connect(daemon)
        let events = try holder.call("ReadEvents", ["task_id": taskID])
        let readID = try post(reader, "ReadEvents", ["task_id": taskID, "after_seq": events["next_seq"].int ?? 0, "wait_ms": 60_000])
        for (client, what) in [(acquirer, "acquire"), (locker, "lock"), (reader, "read")] {
            try confirmParked(client, probe: holder, "\(what) is parked", file: file, line: line)
        }

        guard let child = daemon.child else { throw ITError("no daemon process") }
        child.signal(signal)
        XCTAssertTrue(try answer(acquirer, id: acquireID).isNull, "parked acquire answered null", file: file, line: line)
        XCTAssertTrue(try answer(locker, id: lockID).isNull, "parked lock answered null", file: file, line: line)
        let read = try answer(reader, id: readID)
        assertJSON(read["events"], "[]", "parked ReadEvents answered with no events", file: file, line: line)
        XCTAssertEqual(try daemon.waitForExit(timeout: 10), .exited(0), file: file, line: line)
        for client in [holder, acquirer, locker, reader] {
            switch client.readLineOutcome(timeout: 5) {
            case .eof, .failure: break
            case let other: XCTFail("after the exit a connection still gave \(other)", file: file, line: line)
            }
        }
        var info = stat()
        XCTAssertNotEqual(lstat(daemon.socketPath, &info), 0, "the socket file is removed", file: file, line: line)
        XCTAssertNil(ITLineClient.tryConnect(daemon.socketPath), "nothing accepts any more", file: file, line: line)
        XCTAssertTrue(daemon.currentStderr.contains("stopped"), daemon.currentStderr, file: file, line: line)

        // Everything is there after a restart: the lease, the lock, the event.
        try daemon.start()
        let client = try connect(daemon)
        let status = try taskStatus(client, taskID)
        XCTAssertEqual(status["nodes"][0]["status"].string, "RUNNING", file: file, line: line)
        XCTAssertEqual(status["nodes"][0]["lease_id"].string, lease["lease_id"].string, file: file, line: line)
        let locks = try client.call("ListResourceLocks")["locks"].array ?? []
        XCTAssertEqual(locks.first?["lease_id"].string, lock["lease_id"].string, file: file, line: line)
        XCTAssertEqual(locks.count, 1, "the parked lock request was not granted on the way out", file: file, line: line)
        let journal = try client.call("ReadEvents", ["task_id": taskID])["events"].array ?? []
        XCTAssertTrue(journal.contains { $0["id"].string == eventID }, "the acknowledged event survives", file: file, line: line)
    }
}
