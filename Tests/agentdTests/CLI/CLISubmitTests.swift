// agentd submit: the people's DAG format, checked before anything reaches the daemon.

import XCTest
import Foundation

final class CLISubmitTests: IntegrationTestCase {
    func testSubmitGivesIdsAndResolvesNames() throws {
        let daemon = try makeDaemon()
        let (task, nodes) = try submit(daemon, """
            {"goal": "g", "context": {"k": 1},
             "nodes": [{"name": "fetch"},
                       {"name": "build", "after": "fetch", "payload": {"target": "release"}, "max_attempts": 3},
                       {"name": "test", "after": ["build", "fetch"]}, {}]}
            """)
        XCTAssertEqual(Set(nodes.keys), ["fetch", "build", "test"])
        let status = try taskStatus(try connect(daemon), task)
        XCTAssertEqual(status["task"]["context"]["k"].int, 1)
        let list = try XCTUnwrap(status["nodes"].array)
        XCTAssertEqual(list.count, 4)
        XCTAssertEqual(list.map { $0["id"].string }.prefix(3), [nodes["fetch"], nodes["build"], nodes["test"]])
        XCTAssertEqual(list[1]["dependencies"].array?.map(\.string), [nodes["fetch"]])
        XCTAssertEqual(list[2]["dependencies"].array?.map(\.string), [nodes["build"], nodes["fetch"]])
        assertJSON(list[1]["payload_schema"], #"{"target":"release"}"#)
        XCTAssertEqual(list[1]["max_attempts"].int, 3)
        XCTAssertEqual(list[0]["name"].string, "fetch")
        XCTAssertTrue(list[3]["name"].isNull, "a node without a name has name null")

        // Without --json: the task id alone; from a file as well as stdin.
        let file = "\(daemon.directory)/one.json"
        try #"{"goal":"from a file","nodes":[{"name":"a"}]}"#.write(toFile: file, atomically: true, encoding: .utf8)
        let plain = try cli(daemon, ["submit", file])
        XCTAssertEqual(plain.exit, .exited(0), plain.stderr)
        XCTAssertNotNil(UUID(uuidString: plain.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), plain.stdout)
    }

    func testSubmitRefusesABadGraphBeforeSendingIt() throws {
        let daemon = try makeDaemon()
        let cases: [(String, [String])] = [
            (#"{"goal":"g","nodes":[{"name":"a"},{"name":"a"}]}"#, ["duplicate node name \"a\" (nodes[0] and nodes[1])"]),
            (#"{"goal":"g","nodes":[{"name":"a","after":["nope"]}]}"#,
             ["node \"a\" comes after \"nope\", which is not a node of this task"]),
            (#"{"goal":"g","nodes":[{"name":"a","after":["c"]},{"name":"b","after":["a"]},{"name":"c","after":["b"]}]}"#,
             ["cycle: \"a\" -> \"b\" -> \"c\" -> \"a\""]),
            (#"{"goal":"g","nodes":[{"name":"self","after":"self"}]}"#, ["node \"self\" cannot come after itself"]),
            (#"{"goal":"g","nodes":[{"name":"a","max_attempts":0}]}"#, ["node \"a\": `max_attempts`"]),
            (#"{"goal":"g","nodes":[{"name":"a","dependencies":[]}]}"#, ["node \"a\" has an unknown key `dependencies`"]),
            (#"{"goal":"g","nodes":[{},{"after":["a"]}]}"#, ["nodes[1] comes after \"a\""]),
            (#"{"nodes":[]}"#, ["stdin: `goal` must be a string"]),
            ("{not json", ["stdin: not valid JSON"]),
        ]
        for (file, mentions) in cases {
            let result = try cli(daemon, ["submit", "-"], stdin: file)
            XCTAssertEqual(result.exit, .exited(1), "\(file): \(result.stderr)")
            for text in mentions { XCTAssertTrue(result.stderr.contains(text), "\(file): \(result.stderr) should mention \(text)") }
        }
        let missing = try cli(daemon, ["submit", "\(daemon.directory)/no-such.json"])
        XCTAssertEqual(missing.exit, .exited(1), missing.stderr)
        XCTAssertEqual(try connect(daemon).call("ListTasks")["tasks"].array?.count, 0, "nothing reached the daemon")
    }
}
