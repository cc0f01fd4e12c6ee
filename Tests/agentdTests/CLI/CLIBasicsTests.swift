// The command line's frame: help, version, usage errors, exit statuses shared by every
// command, and finding the socket as the daemon does.

import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class CLIBasicsTests: IntegrationTestCase {
    func testHelpVersionAndUsageErrors() throws {
        let daemon = try makeDaemon()
        let version = try cli(daemon, ["--version"])
        XCTAssertEqual(version.exit, .exited(0))
        XCTAssertFalse(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)

        let help = try cli(daemon, ["--help"])
        XCTAssertEqual(help.exit, .exited(0), help.stderr)
        for command in ["serve", "tasks", "status", "locks", "events", "graph", "submit", "lock", "work", "call"] {
            XCTAssertTrue(help.stdout.contains("  \(command)"), "--help lists \(command):\n\(help.stdout)")
        }
        let lockHelp = try cli(daemon, ["help", "lock"])
        XCTAssertEqual(lockHelp.exit, .exited(0))
        XCTAssertTrue(lockHelp.stdout.contains("AGENTD_FENCING_TOKEN"), lockHelp.stdout)
        XCTAssertEqual(try cli(daemon, ["work", "--help"]).exit, .exited(0))

        let completion = try cli(daemon, ["--generate-completion-script", "bash"])
        XCTAssertEqual(completion.exit, .exited(0))
        XCTAssertTrue(completion.stdout.contains("agentd"), completion.stdout)

        // 64: an unknown command, a bad option value, a missing command after --, bad JSON.
        for arguments in [["bogus"], ["tasks", "--limit", "0"], ["lock", "k"], ["call", "Health", "{not json"],
                          ["graph", "t", "--format", "png"], ["serve", "--sync", "sometimes"], ["--no-such-flag"]] {
            let result = try cli(daemon, arguments)
            XCTAssertEqual(result.exit, .exited(64), "\(arguments): \(result.stderr)")
            XCTAssertFalse(result.stderr.isEmpty, "\(arguments) explains itself on stderr")
        }
    }

    /// `agentd --socket S --db D`, with no command, serves, as the original's binary does.
    func testServeFlagsWithoutTheWordServe() throws {
        let directory = try makeTempDir()
        let socket = "\(directory)/top.sock"
        let daemon = try ITChild.spawn(try ITDaemon.binaryPath(), ["--socket", socket, "--db", "\(directory)/top.db", "--sync", "full"],
                                       environment: ["HOME": directory, "AGENTD_HOME": "\(directory)/home"],
                                       stdoutPath: "\(directory)/out.log", stderrPath: "\(directory)/err.log")
        defer { daemon.killAndReap() }
        try waitUntil("the daemon serves \(socket)") {
            guard daemon.isRunning else { throw ITError("agentd exited: \(daemon.stderr)") }
            return ITLineClient.tryConnect(socket).map { $0.close(); return true } ?? false
        }
        // The socket is claimed before the database opens (a connection waits in the backlog
        // meanwhile), so the file is checked once the daemon has answered.
        let client = try ITLineClient.connect(socket)
        XCTAssertEqual(try client.call("Health")["status"].string, "ok")
        client.close()
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory)/top.db"))
        // Its loop runs and SIGTERM stops it cleanly.
        daemon.signal(SIGTERM)
        XCTAssertEqual(daemon.waitForExit(timeout: 10), .exited(0), daemon.stderr)
    }

    func testEveryCommandExits69WhenTheDaemonIsUnreachable() throws {
        let daemon = try makeDaemon(start: false)
        let dag = "\(daemon.directory)/dag.json"
        try #"{"goal":"g","nodes":[{"name":"a"}]}"#.write(toFile: dag, atomically: true, encoding: .utf8)
        let task = "00000000-0000-4000-8000-000000000000"
        for arguments in [["tasks"], ["status", task], ["locks"], ["events", task], ["graph", task], ["call", "Health"],
                          ["submit", dag], ["lock", "k", "--", "true"], ["work", task, "--", "true"]] {
            let result = try cli(daemon, arguments)
            XCTAssertEqual(result.exit, .exited(69), "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(daemon.socketPath), "\(arguments) names the socket: \(result.stderr)")
        }
    }

    func testDaemonErrorsExit1WithMessageAndReason() throws {
        let daemon = try makeDaemon()
        let missing = "00000000-0000-4000-8000-000000000000"
        for arguments in [["call", "TaskStatus", #"{"task_id":"\#(missing)"}"#], ["status", missing],
                          ["events", missing], ["graph", missing]] {
            let result = try cli(daemon, arguments)
            XCTAssertEqual(result.exit, .exited(1), "\(arguments)")
            XCTAssertTrue(result.stderr.contains("task not found: \(missing)"), "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("TASK_NOT_FOUND"), "\(arguments): \(result.stderr)")
        }
        let short = try cli(daemon, ["status", "abcdef12"])
        XCTAssertEqual(short.exit, .exited(1))
        XCTAssertTrue(short.stderr.contains("abcdef12"), short.stderr)
    }

    func testCallPrintsIndentedOrRawJSON() throws {
        let daemon = try makeDaemon()
        let pretty = try cli(daemon, ["call", "Health", "--socket", daemon.socketPath], environment: ["AGENTD_SOCKET_PATH": "/nonexistent"])
        XCTAssertEqual(pretty.exit, .exited(0), pretty.stderr)
        XCTAssertTrue(pretty.stdout.contains("\n  \"status\": \"ok\""), pretty.stdout)
        let raw = try cli(daemon, ["call", "Health", "--json"])
        XCTAssertTrue(raw.stdout.hasPrefix("{\"status\":\"ok\""), raw.stdout)
    }

    /// With neither --socket nor AGENTD_SOCKET_PATH, the socket comes from $AGENTD_HOME/.env,
    /// as the daemon reads it.
    func testTheSocketIsFoundAsTheDaemonFindsIt() throws {
        let daemon = try makeDaemon()
        try "AGENTD_SOCKET_PATH=\(daemon.socketPath)\n".write(toFile: "\(daemon.home)/.env", atomically: true, encoding: .utf8)
        var environment = daemon.effectiveEnvironment
        environment["AGENTD_SOCKET_PATH"] = nil
        let result = try itRun(try ITDaemon.binaryPath(), ["tasks"], environment: environment, directory: daemon.directory)
        XCTAssertEqual(result.exit, .exited(0), result.stderr)
        XCTAssertEqual(result.stdout, "no tasks\n")
    }
}
