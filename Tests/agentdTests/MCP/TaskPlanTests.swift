// The people's DAG format that task_create takes: names resolved to fresh ids, and every
// refusal naming the node it is about.

import XCTest
import AgentdClient
@testable import AgentdMCP

final class TaskPlanTests: XCTestCase {
    private func plan(_ nodes: JSONValue) throws -> TaskPlan {
        var next = 0
        return try TaskPlan(nodes: nodes) {
            next += 1
            return "id-\(next)"
        }
    }

    private func refusal(_ nodes: JSONValue, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try plan(nodes)
            XCTFail("accepted \(nodes)", file: file, line: line)
            return ""
        } catch {
            return "\(error)"
        }
    }

    func testNamesBecomeIdsAndAfterBecomesDependencies() throws {
        let plan = try plan([
            ["name": "design", "payload": ["do": "plan"]],
            ["name": "tests", "max_attempts": 3],
            ["name": "code", "after": ["design", "tests", "design"]],
        ])
        XCTAssertEqual(plan.idsByName, ["design": "id-1", "tests": "id-2", "code": "id-3"])
        XCTAssertEqual(plan.nodeDefinitions, [
            ["id": "id-1", "name": "design", "dependencies": [], "payload_schema": ["do": "plan"]],
            ["id": "id-2", "name": "tests", "dependencies": [], "payload_schema": [:], "max_attempts": 3],
            ["id": "id-3", "name": "code", "dependencies": ["id-1", "id-2"], "payload_schema": [:]],
        ])
    }

    func testNoNodesIsAnEmptyTask() throws {
        XCTAssertEqual(try plan(nil).nodes, [])
        XCTAssertEqual(try plan([]).nodeDefinitions, [])
    }

    func testFreshIdsAreLowercaseUUIDs() throws {
        let plan = try TaskPlan(nodes: [["name": "a"], ["name": "b"]])
        XCTAssertNotEqual(plan.nodes[0].id, plan.nodes[1].id)
        for node in plan.nodes {
            XCTAssertEqual(node.id.count, 36)
            XCTAssertEqual(node.id, node.id.lowercased())
        }
    }

    func testRefusalsNameTheNode() {
        XCTAssertEqual(refusal([["name": "a"], ["name": "b", "after": ["nope"]]]),
                       "node \"b\" comes after \"nope\", which is not a node of this task")
        XCTAssertEqual(refusal([["name": "a"], ["name": "a"]]),
                       "duplicate node name \"a\": names must be unique within a task")
        XCTAssertEqual(refusal([["name": "a", "after": ["a"]]]), "node \"a\" cannot come after itself")
        XCTAssertTrue(refusal([["name": "a", "deps": ["b"]]]).contains("unknown field `deps`"))
        XCTAssertTrue(refusal([["after": ["b"]]]).contains("node #1 needs a `name`"))
        XCTAssertTrue(refusal([["name": ""]]).contains("needs a `name`"))
        XCTAssertTrue(refusal([["name": .string(String(repeating: "x", count: 201))]]).contains("longer than 200 bytes"))
        XCTAssertTrue(refusal([["name": "a", "max_attempts": 0]]).contains("`max_attempts` must be a positive integer"))
        XCTAssertTrue(refusal([["name": "a", "after": "b"]]).contains("`after` must be an array"))
        XCTAssertTrue(refusal(["name": "a"]).contains("`nodes` must be an array"))
        XCTAssertTrue(refusal(["a"]).contains("node #1 must be an object"))
    }

    func testACycleIsShownInTheOrderItWouldRun() {
        // a after c, b after a, c after b: a -> b -> c -> a, from the node given first.
        let message = refusal([["name": "a", "after": ["c"]], ["name": "b", "after": ["a"]],
                               ["name": "c", "after": ["b"]], ["name": "d"]])
        XCTAssertTrue(message.hasPrefix("cycle: a -> b -> c -> a"), message)
        let pair = refusal([["name": "x", "after": ["y"]], ["name": "y", "after": ["x"]]])
        XCTAssertTrue(pair.hasPrefix("cycle: x -> y -> x"), pair)
    }

    func testALongChainIsCheckedWithoutRecursion() throws {
        let count = 100_000
        let nodes: [JSONValue] = (0..<count).map { i in
            i == 0 ? ["name": "n0"] : ["name": .string("n\(i)"), "after": [.string("n\(i - 1)")]]
        }
        XCTAssertEqual(try plan(.array(nodes)).nodes.count, count)
        var cyclic = nodes
        cyclic[0] = ["name": "n0", "after": [.string("n\(count - 1)")]]
        XCTAssertTrue(refusal(.array(cyclic)).hasPrefix("cycle: "))
    }

    func testLockKeysAreUniqueAndInByteOrder() {
        XCTAssertEqual(LockPlan.order(["file:b", "file:a", "file:b", "File:z", "file:a/x"]),
                       ["File:z", "file:a", "file:a/x", "file:b"])
    }

    func testWaitsAreCappedAtFiftySeconds() {
        XCTAssertEqual(AgentdTools.waitMilliseconds(20), 20_000)
        XCTAssertEqual(AgentdTools.waitMilliseconds(0.25), 250)
        XCTAssertEqual(AgentdTools.waitMilliseconds(600), 50_000)
        XCTAssertEqual(AgentdTools.waitMilliseconds(-1), 0)
    }

    func testTheAgentNameComesFromTheFlagTheEnvironmentOrThePid() {
        XCTAssertEqual(MCPCommand.agentName("flag", environment: ["AGENTD_AGENT": "env"]), "flag")
        XCTAssertEqual(MCPCommand.agentName(nil, environment: ["AGENTD_AGENT": "env"]), "env")
        XCTAssertEqual(MCPCommand.agentName(nil, environment: [:]), "mcp-\(getpid())")
    }
}
