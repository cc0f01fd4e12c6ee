// The people's DAG format, shared by `agentd submit` and the MCP tool task_create: names
// resolved to fresh ids, and every refusal naming the node it is about.

import XCTest
import AgentdClient

final class TaskGraphTests: XCTestCase {
    /// Ids id-1, id-2, ... in node order.
    private func counter() -> () -> String {
        var next = 0
        return {
            next += 1
            return "id-\(next)"
        }
    }

    private func graph(_ nodes: JSONValue, names: TaskGraph.Names = .required) throws -> TaskGraph {
        try TaskGraph(nodes: nodes, names: names, newId: counter())
    }

    private func refusal(_ nodes: JSONValue, names: TaskGraph.Names = .required,
                         file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try graph(nodes, names: names)
            XCTFail("accepted \(nodes)", file: file, line: line)
            return ""
        } catch let invalid as TaskGraph.Invalid {
            return invalid.description
        } catch {
            XCTFail("\(error)", file: file, line: line)
            return ""
        }
    }

    private func taskRefusal(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try TaskDefinition.parse(text, newId: counter())
            XCTFail("accepted \(text)", file: file, line: line)
            return ""
        } catch {
            return "\(error)"
        }
    }

    // MARK: Reading

    func testNamesBecomeIdsAndAfterBecomesDependencies() throws {
        let graph = try graph([
            ["name": "design", "payload": ["do": "plan"]],
            ["name": "tests", "max_attempts": 3],
            ["name": "code", "after": ["design", "tests", "design"]],
            ["name": "ship", "after": "code", "payload": nil],
        ])
        XCTAssertEqual(graph.nodes.map(\.after), [[], [], ["design", "tests"], ["code"]], "duplicates dropped, a string is one name")
        XCTAssertEqual(graph.idsByName, ["design": "id-1", "tests": "id-2", "code": "id-3", "ship": "id-4"])
        XCTAssertEqual(graph.initialNodes, [
            ["id": "id-1", "name": "design", "dependencies": [], "payload_schema": ["do": "plan"]],
            ["id": "id-2", "name": "tests", "dependencies": [], "payload_schema": [:], "max_attempts": 3],
            ["id": "id-3", "name": "code", "dependencies": ["id-1", "id-2"], "payload_schema": [:]],
            ["id": "id-4", "name": "ship", "dependencies": ["id-3"], "payload_schema": nil],
        ])
        XCTAssertEqual(graph.registerParams(goal: "g", context: ["k": 1]),
                       ["goal": "g", "context": ["k": 1], "initial_nodes": graph.initialNodes])
        XCTAssertEqual(graph.registerParams(goal: "g", context: nil), ["goal": "g", "initial_nodes": graph.initialNodes])
    }

    func testNoNodesIsAnEmptyGraph() throws {
        XCTAssertEqual(try graph(nil).nodes, [])
        XCTAssertEqual(try graph(.null).nodes, [])
        XCTAssertEqual(try graph([]).initialNodes, [])
        XCTAssertEqual(try graph([]).idsByName, [:])
    }

    func testUnnamedNodesWhereNamesAreOptional() throws {
        let graph = try graph([["name": "a"], [:], ["name": nil, "after": ["a"]]], names: .optional)
        XCTAssertEqual(graph.nodes.map(\.name), ["a", nil, nil])
        XCTAssertEqual(graph.idsByName, ["a": "id-1"])
        XCTAssertEqual(graph.initialNodes, [
            ["id": "id-1", "name": "a", "dependencies": [], "payload_schema": [:]],
            ["id": "id-2", "dependencies": [], "payload_schema": [:]],
            ["id": "id-3", "dependencies": ["id-1"], "payload_schema": [:]],
        ])
        XCTAssertEqual(refusal([["name": "a"], [:]]), "nodes[1] needs a `name` (a non-empty string)")
        XCTAssertEqual(refusal([["title": "x"]]), "nodes[0] needs a `name` (a non-empty string)")
    }

    func testANameMayHaveTwoHundredBytes() throws {
        let longest = String(repeating: "é", count: 100)  // 200 bytes of UTF-8
        XCTAssertEqual(try graph([["name": .string(longest)]]).nodes[0].name, longest)
        XCTAssertEqual(refusal([["name": .string(longest + "x")]]),
                       "node name \"\(String(repeating: "é", count: 40))\"... (nodes[0]) is longer than 200 bytes")
    }

    func testFreshIdsAreLowercaseVersion4UUIDs() throws {
        let graph = try TaskGraph(nodes: [["name": "a"], ["name": "b"], ["name": "c"]])
        let ids = graph.nodes.map(\.id)
        XCTAssertEqual(Set(ids).count, 3)
        for id in ids {
            let characters = Array(id)
            XCTAssertEqual(characters.count, 36, id)
            XCTAssertEqual(id, id.lowercased())
            XCTAssertEqual([characters[8], characters[13], characters[18], characters[23]], ["-", "-", "-", "-"], id)
            XCTAssertEqual(characters[14], "4", "version 4: \(id)")
            XCTAssertTrue("89ab".contains(characters[19]), "RFC 4122 variant: \(id)")
        }
        XCTAssertEqual(ids, ids.sorted(), "ids rise in node order, as the daemon's own do")
        XCTAssertNotEqual(try TaskGraph(nodes: [["name": "a"]]).nodes[0].id, ids[0])
    }

    // MARK: Refusals

    func testRefusalsNameTheNode() {
        let cases: [(JSONValue, String)] = [
            ([["name": "a"], ["name": "b", "after": ["nope"]]],
             "node \"b\" comes after \"nope\", which is not a node of this task"),
            ([["name": "a"], ["name": "b"], ["name": "a"]],
             "duplicate node name \"a\" (nodes[0] and nodes[2]): names must be unique within a task"),
            ([["name": "a", "after": ["a"]]], "node \"a\" cannot come after itself"),
            ([["name": "a", "after": "a"]], "node \"a\" cannot come after itself"),
            ([["name": "a", "deps": ["b"]]],
             "node \"a\" has an unknown key `deps` (a node is {name, after?, payload?, max_attempts?})"),
            ([["name": ""]], "nodes[0]: `name` must not be empty"),
            ([["name": 7]], "nodes[0]: `name` must be a string"),
            ([["name": "a", "max_attempts": 0]], "node \"a\": `max_attempts` must be a positive integer (at most 2147483647)"),
            ([["name": "a", "max_attempts": 2_147_483_648]],
             "node \"a\": `max_attempts` must be a positive integer (at most 2147483647)"),
            ([["name": "a", "max_attempts": 1.5]], "node \"a\": `max_attempts` must be a positive integer (at most 2147483647)"),
            ([["name": "a", "after": 3]], "node \"a\": `after` must be an array of node names"),
            ([["name": "a", "after": [3]]], "node \"a\": `after` must be an array of node names (strings)"),
            (["name": "a"], "`nodes` must be an array of {name, after?, payload?, max_attempts?}"),
            (["a"], "nodes[0] must be an object {name, after?, payload?, max_attempts?}"),
            ([["name": "say \"hi\"\n", "after": ["x"]]], #"node "say \"hi\"\n" comes after "x", which is not a node of this task"#),
        ]
        for (nodes, message) in cases {
            XCTAssertEqual(refusal(nodes), message, "\(nodes)")
        }
        // Where names are optional, a node without one is known by its position.
        XCTAssertEqual(refusal([[:], ["after": ["nope"]]], names: .optional),
                       "nodes[1] comes after \"nope\", which is not a node of this task")
        XCTAssertEqual(refusal([["after": [], "deps": 1]], names: .optional),
                       "nodes[0] has an unknown key `deps` (a node is {name?, after?, payload?, max_attempts?})")
        XCTAssertEqual(refusal(["a"], names: .optional), "nodes[0] must be an object {name?, after?, payload?, max_attempts?}")
    }

    func testACycleIsShownInTheOrderItWouldRunFromTheNodeGivenFirst() {
        // a after c, b after a, c after b: a -> b -> c -> a.
        XCTAssertEqual(refusal([["name": "a", "after": ["c"]], ["name": "b", "after": ["a"]],
                                ["name": "c", "after": ["b"]], ["name": "d"]]),
                       "cycle: \"a\" -> \"b\" -> \"c\" -> \"a\" (each node would have to finish before itself; `after` must form a DAG)")
        XCTAssertTrue(refusal([["name": "x", "after": ["y"]], ["name": "y", "after": "x"]])
            .hasPrefix("cycle: \"x\" -> \"y\" -> \"x\" ("))
        // Found from a node outside the loop, still read from the loop's first node.
        XCTAssertTrue(refusal([["name": "entry", "after": ["q"]], ["name": "p", "after": ["q"]],
                               ["name": "q", "after": ["r"]], ["name": "r", "after": ["p"]]])
            .hasPrefix("cycle: \"p\" -> \"r\" -> \"q\" -> \"p\" ("))
        // Unnamed nodes around it change nothing.
        XCTAssertTrue(refusal([[:], ["name": "a", "after": ["b"]], ["name": "b", "after": ["a"]]], names: .optional)
            .hasPrefix("cycle: \"a\" -> \"b\" -> \"a\" ("))
    }

    func testALongChainIsCheckedWithoutRecursion() throws {
        let count = 100_000
        let nodes: [JSONValue] = (0..<count).map { i in
            i == 0 ? ["name": "n0"] : ["name": .string("n\(i)"), "after": [.string("n\(i - 1)")]]
        }
        let chain = try graph(.array(nodes))
        XCTAssertEqual(chain.nodes.count, count)
        XCTAssertEqual(chain.initialNodes[count - 1]?["dependencies"], [.string("id-\(count - 1)")])
        var cyclic = nodes
        cyclic[0] = ["name": "n0", "after": [.string("n\(count - 1)")]]
        XCTAssertTrue(refusal(.array(cyclic)).hasPrefix("cycle: \"n0\" -> \"n1\" -> \"n2\" -> "))
    }

    // MARK: A whole task

    func testATaskHasAGoalAContextAndNodesWithOptionalNames() throws {
        let task = try TaskDefinition.parse("""
            {"goal": "ship it", "context": {"repo": "agentd"},
             "nodes": [{"name": "fetch"}, {"name": "build", "after": "fetch", "max_attempts": 3}, {}]}
            """, newId: counter())
        XCTAssertEqual(task.goal, "ship it")
        XCTAssertEqual(task.context, ["repo": "agentd"])
        XCTAssertEqual(task.graph.idsByName, ["fetch": "id-1", "build": "id-2"])
        XCTAssertEqual(task.registerParams, [
            "goal": "ship it", "context": ["repo": "agentd"],
            "initial_nodes": [
                ["id": "id-1", "name": "fetch", "dependencies": [], "payload_schema": [:]],
                ["id": "id-2", "name": "build", "dependencies": ["id-1"], "payload_schema": [:], "max_attempts": 3],
                ["id": "id-3", "dependencies": [], "payload_schema": [:]],
            ],
        ])
        let bare = try TaskDefinition.parse(#"{"goal": "g"}"#)
        XCTAssertEqual(bare.registerParams, ["goal": "g", "initial_nodes": []])
    }

    func testATaskIsRefusedWithTheReason() {
        XCTAssertTrue(taskRefusal("{not json").hasPrefix("not valid JSON: "))
        XCTAssertEqual(taskRefusal("[]"), "a task must be a JSON object {goal, context?, nodes?}")
        XCTAssertEqual(taskRefusal(#"{"goal": "g", "nodse": []}"#), "unknown key `nodse` (a task is {goal, context?, nodes?})")
        XCTAssertEqual(taskRefusal(#"{"nodes": []}"#), "`goal` must be a string")
        XCTAssertEqual(taskRefusal(#"{"goal": "g", "nodes": {}}"#),
                       "`nodes` must be an array of {name?, after?, payload?, max_attempts?}")
        XCTAssertEqual(taskRefusal(#"{"goal": "g", "nodes": [{"name": "a", "after": "b"}]}"#),
                       "node \"a\" comes after \"b\", which is not a node of this task")
    }
}
