// The command line and start-up settings against the real binary: --help in all its forms,
// an in-memory database that leaves nothing behind, and the socket's mode.

import XCTest
import AgentdClient
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class StartupOptionsTests: IntegrationTestCase {

    /// SIGHUP reloads the tokens file of a network listener; without one it changes nothing and,
    /// above all, does not end the daemon.
    func testSIGHUPWithoutAListenerKeepsServing() throws {
        let daemon = try makeDaemon()
        let connection = try openConnection(daemon)
        try connection.call("AcquireResourceLock", ["resource_key": "kept", "ttl_secs": 60])
        kill(try XCTUnwrap(daemon.child).pid, SIGHUP)
        try waitUntil("the daemon logs the SIGHUP") { daemon.currentStderr.contains("SIGHUP") }
        XCTAssertTrue(daemon.isRunning)
        XCTAssertEqual(try connection.call("ListResourceLocks")["locks"]?[0]?["resource_key"], "kept")
    }

    func testHelpPrintsUsageAndExitsZero() throws {
        let directory = try makeTempDir()
        let binary = try ITDaemon.binaryPath()
        for arguments in [["--help"], ["-h"], ["help"], ["serve", "--help"], ["serve", "-h"]] {
            let result = try itRun(binary, arguments, environment: ["HOME": directory, "AGENTD_HOME": directory + "/home"],
                                   directory: directory)
            XCTAssertEqual(result.exit.description, "exit 0", "agentd \(arguments): \(result.stderr)")
            XCTAssertTrue(result.stdout.contains("USAGE"), "agentd \(arguments) prints usage: \(result.stdout)")
            XCTAssertTrue(result.stdout.contains("--socket-mode"), "usage names --socket-mode")
        }
        // Nothing was started: no home, no socket, no database.
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/home"))
    }

    /// AGENTD_DATABASE_URL=sqlite::memory: serves from memory and creates no file at all, in
    /// the working directory or beside anything else.
    func testInMemoryDatabaseLeavesNothingBehind() throws {
        let directory = try makeTempDir()
        let work = directory + "/work"
        XCTAssertEqual(mkdir(work, 0o700), 0)
        let socket = directory + "/m.sock"
        let binary = try ITDaemon.binaryPath()
        // The daemon runs in `work` (the child's cwd is ours, so chdir around the spawn).
        let saved = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(work))
        let child = try ITChild.spawn(binary, ["serve", "--socket", socket],
                                      environment: ["HOME": directory, "AGENTD_HOME": directory + "/home",
                                                    "AGENTD_DATABASE_URL": "sqlite::memory:"],
                                      stdoutPath: directory + "/out.log", stderrPath: directory + "/err.log")
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(saved))
        defer { child.killAndReap() }
        try waitUntil("the in-memory daemon accepts connections") {
            guard child.isRunning else { throw ITError("daemon exited: \(child.stderr)") }
            if let probe = ITLineClient.tryConnect(socket) { probe.close(); return true }
            return false
        }
        let client = try ITLineClient.connect(socket)
        defer { client.close() }
        let task = try client.call("RegisterTask", ["goal": "in memory", "initial_nodes": [["id": itUUID()]]])
        XCTAssertNotNil(task["task_id"].string)
        XCTAssertNotNil(try client.call("AcquireNextNode", ["task_id": task["task_id"].string!])["lease_id"].string)

        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: work), [], "nothing in the working directory")
        let entries = Set(try FileManager.default.contentsOfDirectory(atPath: directory))
        XCTAssertEqual(entries, ["work", "m.sock", "out.log", "err.log"], "nothing beside the socket either")
        child.signal(SIGTERM)
        XCTAssertEqual(child.waitForExit(timeout: 10)?.description, "exit 0", child.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: work), [])
    }

    /// --socket-mode 0660 (or AGENTD_SOCKET_MODE) makes the socket group-accessible; the
    /// default stays 0600; anything else stops the start with a message naming the setting.
    func testSocketMode() throws {
        func mode(_ path: String) -> mode_t {
            var info = stat()
            XCTAssertEqual(stat(path, &info), 0, path)
            return info.st_mode & 0o777
        }
        let plain = try makeDaemon()
        XCTAssertEqual(mode(plain.socketPath), 0o600)
        let byFlag = try makeDaemon(["--socket-mode", "0660"])
        XCTAssertEqual(mode(byFlag.socketPath), 0o660)
        XCTAssertEqual(try connect(byFlag).call("Health")["status"].string, "ok")
        let byEnvironment = try makeDaemon(environment: ["AGENTD_SOCKET_MODE": "660"])
        XCTAssertEqual(mode(byEnvironment.socketPath), 0o660)
        let explicitDefault = try makeDaemon(environment: ["AGENTD_SOCKET_MODE": "0600"])
        XCTAssertEqual(mode(explicitDefault.socketPath), 0o600)

        for (arguments, environment, setting) in [
            (["--socket-mode", "0666"], [:], "--socket-mode"),
            (["--socket-mode", "rw"], [:], "--socket-mode"),
            ([], ["AGENTD_SOCKET_MODE": "0777"], "AGENTD_SOCKET_MODE"),
            ([], ["AGENTD_SOCKET_MODE": "0640"], "AGENTD_SOCKET_MODE"),
        ] as [([String], [String: String], String)] {
            let refused = try makeDaemon(arguments, environment: environment, start: false)
            try refused.start(waitReady: false)
            let exit = try refused.waitForExit()
            XCTAssertNotEqual(exit.description, "exit 0", "\(arguments) \(environment)")
            XCTAssertTrue(refused.currentStderr.contains(setting) && refused.currentStderr.contains("0600 or 0660"),
                          "the error names \(setting): \(refused.currentStderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: refused.socketPath), "no socket was made")
        }
    }
}
