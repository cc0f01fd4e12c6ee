// The commands a person reads: tasks, status, locks, events (with --follow), graph.

import XCTest
import Foundation

final class CLIReadingTests: IntegrationTestCase {
    private let dag = """
        {"goal": "ship the release", "context": {"repo": "agentd"},
         "nodes": [{"name": "fetch"}, {"name": "build", "after": ["fetch"], "max_attempts": 3},
                   {"name": "test", "after": ["build"]}]}
        """

    func testTasksAndStatusTables() throws {
        let daemon = try makeDaemon()
        let (task, nodes) = try submit(daemon, dag)
        let client = try connect(daemon)
        let lease = try acquire(client, task, owner: "worker-a")
        XCTAssertEqual(lease["node_id"].string, nodes["fetch"])

        let tasks = try cli(daemon, ["tasks"])
        XCTAssertEqual(tasks.exit, .exited(0), tasks.stderr)
        let lines = tasks.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 2, tasks.stdout)
        XCTAssertTrue(lines[0].hasPrefix("TASK"), tasks.stdout)
        let short = String(task.filter { $0 != "-" }.suffix(8))
        XCTAssertTrue(lines[1].hasPrefix(short), tasks.stdout)
        for text in ["ACTIVE", "0/3", "ship the release", "just now"] { XCTAssertTrue(lines[1].contains(text), tasks.stdout) }
        XCTAssertFalse(tasks.stdout.contains("\u{1B}["), "no colour when stdout is not a TTY")

        let json = try cli(daemon, ["tasks", "--json", "--status", "active"])
        XCTAssertEqual(try ITJSON.parse(json.stdout)["tasks"][0]["id"].string, task, json.stdout)
        XCTAssertEqual(try cli(daemon, ["tasks", "--status", "COMPLETED"]).stdout, "no COMPLETED tasks\n")

        // By short id: the header, then one row a node, by name.
        let status = try cli(daemon, ["status", short])
        XCTAssertEqual(status.exit, .exited(0), status.stderr)
        XCTAssertTrue(status.stdout.contains(task), status.stdout)
        XCTAssertTrue(status.stdout.contains("ship the release"), status.stdout)
        let row = { (name: String) in status.stdout.split(separator: "\n").first { $0.hasPrefix(name + " ") }.map(String.init) ?? "" }
        XCTAssertTrue(row("fetch").contains("RUNNING") && row("fetch").contains("worker-a") && row("fetch").contains("in "),
                      status.stdout)
        XCTAssertTrue(row("build").contains("PENDING") && row("build").contains("0/3") && row("build").hasSuffix("fetch"),
                      status.stdout)
        XCTAssertTrue(row("test").hasSuffix("build"), status.stdout)
        let raw = try cli(daemon, ["status", task, "--json"])
        XCTAssertEqual(try ITJSON.parse(raw.stdout)["task"]["id"].string, task)

        // A failed node shows its dependents as BLOCKED.
        _ = try client.call("FailNode", ["task_id": task, "node_id": lease["node_id"].string!,
                                         "lease_id": lease["lease_id"].string!, "error_payload": ["why": "no network"]])
        let failed = try cli(daemon, ["status", task])
        XCTAssertTrue(failed.stdout.contains("FAILED"), failed.stdout)
        XCTAssertEqual(failed.stdout.components(separatedBy: "BLOCKED").count - 1, 2, failed.stdout)
    }

    func testLocksTable() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let lock = try client.call("AcquireResourceLock", ["resource_key": "file:src/lib.rs", "owner": "codex-cli",
                                                           "provider": "openai", "ttl_secs": 300])
        _ = try client.call("AcquireResourceLock", ["resource_key": "db:migrations", "owner": "claude-code"])
        let locks = try cli(daemon, ["locks"])
        XCTAssertEqual(locks.exit, .exited(0), locks.stderr)
        let lines = locks.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 3, locks.stdout)
        XCTAssertTrue(lines[0].hasPrefix("KEY"), locks.stdout)
        let row = String(lines[2])
        XCTAssertTrue(row.hasPrefix("file:src/lib.rs"), locks.stdout)
        for text in ["codex-cli", "openai", " \(lock["fencing_token"].int!)"] { XCTAssertTrue(row.contains(text), locks.stdout) }
        // 300 s ahead, in whole seconds: "in 4m59s" or "in 5m00s".
        XCTAssertTrue(row.contains("in 4m") || row.contains("in 5m00s"), locks.stdout)

        let prefixed = try cli(daemon, ["locks", "file:"])
        XCTAssertEqual(prefixed.stdout.split(separator: "\n").count, 2, prefixed.stdout)
        XCTAssertEqual(try cli(daemon, ["locks", "none:"]).stdout, "no locks under none:\n")
        let json = try cli(daemon, ["locks", "--json"])
        XCTAssertEqual(try ITJSON.parse(json.stdout)["locks"].array?.count, 2, json.stdout)
    }

    func testEventsAndFollow() throws {
        let daemon = try makeDaemon()
        let (task, nodes) = try submit(daemon, #"{"goal":"g","nodes":[{"name":"only"}]}"#)
        let client = try connect(daemon)
        let lease = try acquire(client, task)
        let ids: [String: Any] = ["task_id": task, "node_id": nodes["only"]!, "lease_id": lease["lease_id"].string!]
        _ = try client.call("CommitEvent", ids.merging(["payload": ["message": "before"]]) { $1 })

        let listed = try cli(daemon, ["events", task])
        XCTAssertEqual(listed.exit, .exited(0), listed.stderr)
        XCTAssertTrue(listed.stdout.hasPrefix("1  "), listed.stdout)
        XCTAssertTrue(listed.stdout.contains("only  COMMIT_EVENT  {\"message\":\"before\"}"), listed.stdout)

        let follower = try startCLI(daemon, ["events", task, "--follow"])
        try waitUntil("the follower printed the first event") { follower.stdout.contains("before") }
        _ = try client.call("CommitEvent", ids.merging(["payload": ["message": "after"]]) { $1 })
        try waitUntil("the follower printed the event committed after it started") { follower.stdout.contains("\"after\"") }
        XCTAssertTrue(follower.isRunning, "following goes on while the task is ACTIVE")
        _ = try complete(client, task, lease, result: ["done": true])
        XCTAssertEqual(follower.waitForExit(timeout: 20), .exited(0), "follow stops when the task ends: \(follower.stderr)")
        XCTAssertTrue(follower.stdout.contains("COMPLETE_NODE"), follower.stdout)

        let json = try cli(daemon, ["events", task, "--json", "--after", "1"])
        let lines = json.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 2, json.stdout)
        XCTAssertEqual(try ITJSON.parse(String(lines[0]))["seq"].int, 2)
        let byNode = try cli(daemon, ["events", task, "--node", "only"])
        XCTAssertEqual(byNode.stdout.split(separator: "\n").count, 3, byNode.stdout)
    }

    func testGraphAsDotAndMermaid() throws {
        let daemon = try makeDaemon()
        let (task, _) = try submit(daemon, dag)
        let client = try connect(daemon)
        _ = try complete(client, task, try acquire(client, task), result: [:])

        let dot = try cli(daemon, ["graph", task])
        XCTAssertEqual(dot.exit, .exited(0), dot.stderr)
        XCTAssertTrue(dot.stdout.hasPrefix("digraph"), dot.stdout)
        XCTAssertTrue(dot.stdout.contains(##"label="fetch\nCOMPLETED", fillcolor="#b8e186""##), dot.stdout)
        XCTAssertTrue(dot.stdout.contains(#"label="build\nPENDING""#), dot.stdout)
        XCTAssertTrue(dot.stdout.contains("n0 -> n1;") && dot.stdout.contains("n1 -> n2;"), dot.stdout)

        let mermaid = try cli(daemon, ["graph", task, "--format", "mermaid"])
        XCTAssertTrue(mermaid.stdout.hasPrefix("flowchart LR"), mermaid.stdout)
        XCTAssertTrue(mermaid.stdout.contains(#"n0["fetch<br/>COMPLETED"]:::completed"#), mermaid.stdout)
        XCTAssertTrue(mermaid.stdout.contains("n0 --> n1"), mermaid.stdout)

        guard let graphviz = itWhich("dot") else {
            throw XCTSkip("Graphviz dot is not installed; the DOT text was checked, not rendered")
        }
        let source = "\(daemon.directory)/dag.dot"
        try dot.stdout.write(toFile: source, atomically: true, encoding: .utf8)
        let rendered = try itRun(graphviz, ["-Tsvg", source], environment: ProcessInfo.processInfo.environment,
                                 directory: daemon.directory)
        XCTAssertEqual(rendered.exit, .exited(0), "dot refused the graph: \(rendered.stderr)")
        XCTAssertTrue(rendered.stdout.contains("<svg"), rendered.stdout)
    }
}
