// agentd lock: a command run while holding a lock, as flock(1) does for files.

import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class CLILockTests: IntegrationTestCase {
    func testTheCommandSeesItsLockAndItsStatusIsPassedOn() throws {
        let daemon = try makeDaemon()
        let result = try cli(daemon, ["lock", "file:a", "--", "sh", "-c",
                                      #"echo "$AGENTD_LOCK_KEY $AGENTD_FENCING_TOKEN $AGENTD_LOCK_LEASE_ID""#])
        XCTAssertEqual(result.exit, .exited(0), result.stderr)
        let fields = result.stdout.split(separator: " ")
        XCTAssertEqual(fields.count, 3, result.stdout)
        XCTAssertEqual(fields.first, "file:a")
        XCTAssertNotNil(Int(fields[1]), "a fencing token: \(result.stdout)")
        let client = try connect(daemon)
        XCTAssertEqual(try client.call("ListResourceLocks")["locks"].array?.count, 0, "released when the command ended")

        XCTAssertEqual(try cli(daemon, ["lock", "file:a", "--", "sh", "-c", "exit 5"]).exit, .exited(5))
        let missing = try cli(daemon, ["lock", "file:a", "--", "/no/such/command"])
        XCTAssertEqual(missing.exit, .exited(127), missing.stderr)
    }

    func testASecondLockThatCannotWaitLongEnoughExits75() throws {
        let daemon = try makeDaemon()
        let holder = try startCLI(daemon, ["lock", "db:migrations", "--owner", "first", "--", "sleep", "300"])
        let client = try connect(daemon)
        try waitUntil("the first holds the lock") { try client.call("ListResourceLocks")["locks"].array?.count == 1 }
        let second = try cli(daemon, ["lock", "db:migrations", "--wait", "1", "--", "true"])
        XCTAssertEqual(second.exit, .exited(75), second.stderr)
        XCTAssertTrue(second.stderr.contains("held by first"), second.stderr)
        XCTAssertTrue(holder.isRunning)
    }

    /// kill -9 of `agentd lock`: the command dies too and the lock is free at once.
    func testKillingTheHolderKillsTheCommandAndFreesTheLock() throws {
        let daemon = try makeDaemon()
        let pidFile = "\(daemon.directory)/child.pid"
        let holder = try startCLI(daemon, ["lock", "file:b", "--ttl", "300", "--", "sh", "-c", "echo $$ > \(pidFile); exec sleep 300"])
        try waitUntil("the command started") { !ITChild.readFile(pidFile).isEmpty }
        let pid = try XCTUnwrap(pid_t(ITChild.readFile(pidFile).trimmingCharacters(in: .whitespacesAndNewlines)))
        let client = try connect(daemon)
        XCTAssertEqual(try client.call("ListResourceLocks")["locks"].array?.count, 1)
        holder.killAndReap()
        try waitUntil("the command is gone") { !processIsAlive(pid) }
        try waitUntil("the lock is free") { try client.call("ListResourceLocks")["locks"].array?.count == 0 }
    }

    func testSignalsAreForwardedToTheCommand() throws {
        let daemon = try makeDaemon()
        let ready = "\(daemon.directory)/ready"
        let holder = try startCLI(daemon, ["lock", "k", "--", "sh", "-c",
                                           "trap 'exit 9' TERM; touch \(ready); while :; do sleep 0.05; done"])
        try waitUntil("the command is ready") { FileManager.default.fileExists(atPath: ready) }
        holder.signal(SIGTERM)
        XCTAssertEqual(holder.waitForExit(timeout: 20), .exited(9), holder.stderr)
        XCTAssertEqual(try connect(daemon).call("ListResourceLocks")["locks"].array?.count, 0)
    }

    /// The daemon goes away: the lock is lost, the command gets SIGTERM, and lock exits 75.
    func testALostLockStopsTheCommandAndExits75() throws {
        let daemon = try makeDaemon()
        let ready = "\(daemon.directory)/ready"
        let holder = try startCLI(daemon, ["lock", "k", "--ttl", "3", "--", "sh", "-c",
                                           "touch \(ready); exec sleep 300"])
        try waitUntil("the command is ready") { FileManager.default.fileExists(atPath: ready) }
        try daemon.stop()
        XCTAssertEqual(holder.waitForExit(timeout: 20), .exited(75), holder.stderr)
        XCTAssertTrue(holder.stderr.contains("lost the lock on k"), holder.stderr)
    }
}
