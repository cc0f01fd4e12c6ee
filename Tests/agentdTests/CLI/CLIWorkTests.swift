// agentd work: any command as a worker of a task's DAG.

import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class CLIWorkTests: IntegrationTestCase {
    /// Three nodes by name, two `agentd work --jobs 2` at once: every node runs exactly once,
    /// gets its lease and context on stdin and its names in the environment, and completes
    /// with what it printed.
    func testTwoWorkersCompleteADagRunningEachNodeOnce() throws {
        let daemon = try makeDaemon()
        let (task, nodes) = try submit(daemon, """
            {"goal": "g", "nodes": [{"name": "fetch"}, {"name": "build", "after": ["fetch"]},
                                    {"name": "docs", "after": ["fetch"]}]}
            """)
        let ran = "\(daemon.directory)/ran.txt"
        let script = """
            echo "$AGENTD_NODE_NAME" >> \(ran)
            cat > \(daemon.directory)/stdin.$AGENTD_NODE_NAME
            printf '{"node":"%s","id":"%s","task":"%s"}' "$AGENTD_NODE_NAME" "$AGENTD_NODE_ID" "$AGENTD_TASK_ID"
            """
        let workers = try (0..<2).map { _ in try startCLI(daemon, ["work", task, "--jobs", "2", "--", "sh", "-c", script]) }
        for worker in workers {
            XCTAssertEqual(worker.waitForExit(timeout: 30), .exited(0), "worker: \(worker.stderr)")
        }
        let lines = ITChild.readFile(ran).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.sorted(), ["build", "docs", "fetch"], "each node ran exactly once")
        XCTAssertEqual(lines.first, "fetch")

        let status = try taskStatus(try connect(daemon), task)
        XCTAssertEqual(status["task"]["status"].string, "COMPLETED")
        for node in status["nodes"].array ?? [] {
            let name = node["name"].string ?? "?"
            XCTAssertEqual(node["result_payload"]["node"].string, name, "\(node)")
            XCTAssertEqual(node["result_payload"]["id"].string, nodes[name])
            XCTAssertEqual(node["result_payload"]["task"].string, task)
            let input = try ITJSON.parse(ITChild.readFile("\(daemon.directory)/stdin.\(name)"))
            XCTAssertEqual(input["node_id"].string, nodes[name], "stdin holds the acquire result")
            XCTAssertNotNil(input["lease_id"].string)
            XCTAssertEqual(input["context"]["node"]["name"].string, name)
        }
    }

    func testAFailingCommandFailsItsNodeWithTheExitCode() throws {
        let daemon = try makeDaemon()
        let (task, nodes) = try submit(daemon, #"{"goal":"g","nodes":[{"name":"a"},{"name":"b","after":["a"]}]}"#)
        let result = try cli(daemon, ["work", task, "--", "sh", "-c", "echo 'it broke' >&2; exit 3"])
        XCTAssertEqual(result.exit, .exited(1), result.stderr)
        XCTAssertTrue(result.stderr.contains("a failed with exit status 3"), result.stderr)
        let status = try taskStatus(try connect(daemon), task)
        XCTAssertEqual(status["task"]["status"].string, "FAILED")
        let node = try XCTUnwrap(status["nodes"].array?.first { $0["id"].string == nodes["a"] })
        XCTAssertEqual(node["status"].string, "FAILED")
        XCTAssertEqual(node["result_payload"]["exit_code"].int, 3)
        XCTAssertEqual(node["result_payload"]["stderr"].string, "it broke\n")
    }

    func testOutputThatIsNotJSONIsWrapped() throws {
        let daemon = try makeDaemon()
        let (task, nodes) = try submit(daemon, #"{"goal":"g","nodes":[{"name":"a"}]}"#)
        let result = try cli(daemon, ["work", task, "--once", "--", "echo", "hello"])
        XCTAssertEqual(result.exit, .exited(0), result.stderr)
        let status = try taskStatus(try connect(daemon), task)
        XCTAssertEqual(status["nodes"][0]["id"].string, nodes["a"])
        assertJSON(status["nodes"][0]["result_payload"], #"{"output":"hello\n"}"#)
    }

    /// A command that leaves a background process holding its output open has still ended: its
    /// node completes with what it wrote, instead of staying RUNNING for as long as that process
    /// lives (here longer than the harness waits for `agentd work`).
    func testABackgroundProcessHoldingTheOutputDoesNotKeepTheNodeRunning() throws {
        let daemon = try makeDaemon()
        let (task, _) = try submit(daemon, #"{"goal":"g","nodes":[{"name":"a"}]}"#)
        let pidFile = daemon.directory + "/background.pid"
        defer {
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                kill(pid, SIGKILL)
            }
        }
        let script = #"sleep 120 & echo $! > "$0"; echo '{"done":true}'"#
        let result = try cli(daemon, ["work", task, "--once", "--", "sh", "-c", script, pidFile], timeout: 60)
        XCTAssertEqual(result.exit, .exited(0), result.stderr)
        let status = try taskStatus(try connect(daemon), task)
        XCTAssertEqual(status["nodes"][0]["status"].string, "COMPLETED")
        assertJSON(status["nodes"][0]["result_payload"], #"{"done":true}"#)
    }

    func testOnceWithNothingToRunExits75() throws {
        let daemon = try makeDaemon()
        let (task, _) = try submit(daemon, #"{"goal":"g","nodes":[{"name":"a"},{"name":"b","after":["a"]}]}"#)
        _ = try acquire(try connect(daemon), task)   // a runs elsewhere; b waits for it
        let result = try cli(daemon, ["work", task, "--once", "--wait", "0.2", "--", "true"])
        XCTAssertEqual(result.exit, .exited(75), result.stderr)
        let done = try cli(daemon, ["work", task, "--wait", "0.2", "--", "true"])
        XCTAssertEqual(done.exit, .exited(0), "without --once, running nothing is no failure: \(done.stderr)")
    }

    /// A signal while agentd work is still asking the daemon about the task (here a socket
    /// that accepts and never answers) ends it, as it ends agentd lock before its command runs.
    func testASignalBeforeTheWorkersStartEndsIt() throws {
        let daemon = try makeDaemon()
        let silent = "\(daemon.directory)/silent.sock"
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(listener, 0)
        defer { Glibc.close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(silent.utf8))
            raw[silent.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(listener, 8), 0)
        let worker = try startCLI(daemon, ["work", "--socket", silent, "00000000-0000-4000-8000-000000000000", "--", "true"])
        Thread.sleep(forTimeInterval: 0.5)
        worker.signal(SIGTERM)
        XCTAssertEqual(worker.waitForExit(timeout: 10), .exited(128 + SIGTERM), worker.stderr)
    }

    /// kill -9 of the worker: its command dies with it and the lease ends at once.
    func testAKilledWorkerTakesItsCommandAndLeaseWithIt() throws {
        let daemon = try makeDaemon()
        let (task, nodes) = try submit(daemon, #"{"goal":"g","nodes":[{"name":"long"}]}"#)
        let pidFile = "\(daemon.directory)/child.pid"
        let worker = try startCLI(daemon, ["work", task, "--", "sh", "-c", "echo $$ > \(pidFile); exec sleep 300"])
        try waitUntil("the command started") { !ITChild.readFile(pidFile).isEmpty }
        let pid = try XCTUnwrap(pid_t(ITChild.readFile(pidFile).trimmingCharacters(in: .whitespacesAndNewlines)))
        worker.killAndReap()
        try waitUntil("the command is gone") { !processIsAlive(pid) }
        let client = try connect(daemon)
        try waitUntil("the node is PENDING again") { try nodeStatus(client, task, nodes["long"]!) == "PENDING" }
    }
}
