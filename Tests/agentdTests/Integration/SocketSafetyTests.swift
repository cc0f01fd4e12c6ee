// Integration: the socket file, refusing to start over something, configuration, and the
// command-line client.

import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class SocketSafetyTests: IntegrationTestCase {

    private func fileType(_ path: String) -> mode_t? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return info.st_mode & S_IFMT
    }

    /// The socket is 0600; SIGTERM exits 0 and removes it.
    func testSocketModeAndCleanShutdown() throws {
        let daemon = try makeDaemon()
        var info = stat()
        XCTAssertEqual(lstat(daemon.socketPath, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFSOCK, "a socket at \(daemon.socketPath)")
        XCTAssertEqual(info.st_mode & 0o777, 0o600, String(format: "socket mode %o", info.st_mode & 0o777))

        let client = try connect(daemon)
        XCTAssertEqual(try client.call("Health")["status"].string, "ok")
        XCTAssertEqual(try daemon.stop(), .exited(0), "SIGTERM exits 0; stderr:\n\(daemon.currentStderr)")
        XCTAssertNil(fileType(daemon.socketPath), "the socket file is removed on SIGTERM")
    }

    /// A second daemon on the socket of a live one exits non-zero and leaves it alone.
    func testSecondDaemonOnLiveSocketRefusesToStart() throws {
        let first = try makeDaemon()
        let client = try connect(first)
        let taskID = try registerTask(client, nodes: [nodeDef(itUUID())])

        let second = try makeDaemon(beside: first)
        second.dbPath = "\(first.directory)/second.db"
        try second.start(waitReady: false)
        let exit = try second.waitForExit()
        XCTAssertNotEqual(exit, .exited(0), "second daemon on a live socket must fail")
        if case .signaled = exit { XCTFail("second daemon died of a signal: \(exit); stderr:\n\(second.currentStderr)") }

        XCTAssertEqual(fileType(first.socketPath), S_IFSOCK, "the live socket file is left in place")
        XCTAssertEqual(try client.call("TaskStatus", ["task_id": taskID])["task"]["id"].string, taskID, "the first daemon still answers")
        let fresh = try connect(first)
        XCTAssertEqual(try fresh.call("Health")["status"].string, "ok", "new connections still reach the first daemon")
    }

    /// A regular file at the socket path: the daemon exits non-zero and does not touch it.
    func testRegularFileAtSocketPathIsLeftAlone() throws {
        let daemon = try makeDaemon(start: false)
        let contents = "precious data, not a socket\n"
        try contents.write(toFile: daemon.socketPath, atomically: false, encoding: .utf8)
        try daemon.start(waitReady: false)
        let exit = try daemon.waitForExit()
        XCTAssertNotEqual(exit, .exited(0))
        if case .signaled = exit { XCTFail("daemon died of a signal: \(exit)") }
        XCTAssertEqual(fileType(daemon.socketPath), S_IFREG)
        XCTAssertEqual(try String(contentsOfFile: daemon.socketPath, encoding: .utf8), contents)
        XCTAssertFalse(daemon.currentStderr.isEmpty, "the daemon should say why it refused")
    }

    /// Bad configuration values: non-zero exit and a message naming the setting.
    func testBadConfigurationIsRefused() throws {
        let cases: [(arguments: [String], environment: [String: String], mentions: [String])] = [
            (["--node-timeout", "abc"], [:], ["node-timeout", "node_timeout"]),
            ([], ["AGENTD_NODE_TIMEOUT_SECS": "-1"], ["node-timeout", "node_timeout"]),
            (["--sync", "maybe"], [:], ["sync"]),
            (["--context-event-limit", "many"], [:], ["context-event-limit", "context_event_limit"]),
        ]
        for (arguments, environment, mentions) in cases {
            let what = "\(arguments) \(environment)"
            let daemon = try makeDaemon(arguments, environment: environment, start: false)
            try daemon.start(waitReady: false)
            let exit = try daemon.waitForExit()
            XCTAssertNotEqual(exit, .exited(0), what)
            if case .signaled = exit { XCTFail("\(what): died of a signal: \(exit)") }
            let stderr = daemon.currentStderr.lowercased()
            XCTAssertTrue(mentions.contains { stderr.contains($0) }, "\(what): stderr should name the setting (\(mentions)); got: \(daemon.currentStderr)")
            XCTAssertNotEqual(fileType(daemon.socketPath), S_IFSOCK, "\(what): no socket left behind")
        }
    }

    /// Settings from an env file, the process environment winning over it, and paths from
    /// AGENTD_HOME, AGENTD_SOCKET_PATH and AGENTD_DATABASE_URL.
    func testEnvironmentConfiguration() throws {
        let directory = try makeTempDir()
        let envFile = "\(directory)/agentd.env"
        try "AGENTD_NODE_TIMEOUT_SECS=7\nAGENTD_CONTEXT_EVENT_LIMIT=5\n".write(toFile: envFile, atomically: true, encoding: .utf8)

        let fromFile = try makeDaemon(environment: ["AGENTD_ENV_FILE": envFile])
        var health = try connect(fromFile).call("Health")
        XCTAssertEqual(health["running_timeout_secs"].int, 7, "\(health)")
        XCTAssertEqual(health["context_event_limit"].int, 5, "\(health)")

        let overridden = try makeDaemon(environment: ["AGENTD_ENV_FILE": envFile, "AGENTD_NODE_TIMEOUT_SECS": "9"])
        health = try connect(overridden).call("Health")
        XCTAssertEqual(health["running_timeout_secs"].int, 9, "the process environment wins: \(health)")
        XCTAssertEqual(health["context_event_limit"].int, 5, "\(health)")

        let flags = try makeDaemon(["--node-timeout", "11", "--context-event-limit", "3"])
        health = try connect(flags).call("Health")
        XCTAssertEqual(health["running_timeout_secs"].int, 11, "\(health)")
        XCTAssertEqual(health["context_event_limit"].int, 3, "\(health)")

        // Default paths under AGENTD_HOME.
        let home = try makeDaemon(start: false)
        home.passPaths = false
        home.socketPath = "\(home.home)/agentd.sock"
        try home.start()
        XCTAssertEqual(try connect(home).call("Health")["status"].string, "ok")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(home.home)/agent_state.db"), "database at $AGENTD_HOME/agent_state.db")

        // AGENTD_SOCKET_PATH and AGENTD_DATABASE_URL.
        let explicit = try makeDaemon(start: false)
        explicit.passPaths = false
        explicit.socketPath = "\(explicit.directory)/env.sock"
        explicit.environment = ["AGENTD_SOCKET_PATH": explicit.socketPath,
                                "AGENTD_DATABASE_URL": "sqlite://\(explicit.directory)/env.db"]
        try explicit.start()
        XCTAssertEqual(try connect(explicit).call("Health")["status"].string, "ok")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(explicit.directory)/env.db"), "database from AGENTD_DATABASE_URL")
    }

    /// A client that disconnects without reading its answers does not hurt the daemon.
    func testClientVanishingMidStream() throws {
        let daemon = try makeDaemon()
        for _ in 0..<5 {
            let rude = try daemon.connect()
            var batch = ""
            for id in 1...200 { batch += ITLineClient.requestLine(id: id, method: "Metrics", params: nil) + "\n" }
            try rude.send(batch)
            rude.close()
        }
        let client = try connect(daemon)
        XCTAssertEqual(try client.call("Health")["status"].string, "ok")
        XCTAssertTrue(daemon.isRunning)
    }

    /// `agentd call`: indented JSON and exit 0 on success, exit 1 with the message on error.
    func testCallSubcommand() throws {
        let daemon = try makeDaemon()
        let binary = try ITDaemon.binaryPath()
        let env = daemon.effectiveEnvironment

        let health = try itRun(binary, ["call", "Health", "--socket", daemon.socketPath], environment: env, directory: daemon.directory)
        XCTAssertEqual(health.exit, .exited(0), health.stderr)
        let parsed = try ITJSON.parse(health.stdout)
        XCTAssertEqual(parsed["status"].string, "ok", health.stdout)
        XCTAssertTrue(health.stdout.contains("\n  "), "indented JSON expected: \(health.stdout)")

        let nodeID = itUUID()
        let params = itJSONText(["goal": "from the cli", "initial_nodes": [["id": nodeID]]])
        let registered = try itRun(binary, ["call", "RegisterTask", params, "--socket", daemon.socketPath],
                                   environment: env, directory: daemon.directory)
        XCTAssertEqual(registered.exit, .exited(0), registered.stderr)
        let taskID = try XCTUnwrap(try ITJSON.parse(registered.stdout)["task_id"].string, registered.stdout)
        let status = try connect(daemon).call("TaskStatus", ["task_id": taskID])
        XCTAssertEqual(status["nodes"][0]["id"].string, nodeID)

        let missing = itUUID()
        let failed = try itRun(binary, ["call", "TaskStatus", itJSONText(["task_id": missing]), "--socket", daemon.socketPath],
                               environment: env, directory: daemon.directory)
        XCTAssertEqual(failed.exit, .exited(1))
        XCTAssertTrue((failed.stderr + failed.stdout).contains("task not found: \(missing)"),
                      "the error message is shown: stdout \(failed.stdout) stderr \(failed.stderr)")
    }
}
