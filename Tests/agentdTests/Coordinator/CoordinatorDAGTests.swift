import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

final class CoordinatorDAGTests: XCTestCase {
    func testValidationMessagesMatchTheOriginal() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1), b = uuid(2), c3 = uuid(3)
        XCTAssertRefused(try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a), node(a)]),
                         "invalid state: duplicate node id: \(a.string)")
        XCTAssertRefused(try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a, [a])]),
                         "invalid state: node \(a.string) cannot depend on itself")
        XCTAssertRefused(try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a, [b])]),
                         "invalid state: node \(a.string) depends on unknown node \(b.string)")
        do {
            _ = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a, [c3]), node(b, [a]), node(c3, [b])])
            XCTFail("cycle accepted")
        } catch let error as CoordinatorError {
            XCTAssertTrue(error.message.hasPrefix("invalid state: cycle detected at node "), error.message)
            XCTAssertEqual(error.reason, .invalidDAG)
        }
        // Nothing of the refused registrations was kept.
        XCTAssertEqual(c.totals.tasks, 0)
        XCTAssertEqual(c.totals.nodes, 0)
        XCTAssertTrue(c.changes.isEmpty)
    }

    func testNodeIdsAreUniqueAcrossTasks() throws {
        let (c, _) = makeCoordinator()
        _ = try c.registerTask(goal: "one", context: bytes("{}"), nodes: [node(uuid(1))])
        XCTAssertRefused(try c.registerTask(goal: "two", context: bytes("{}"), nodes: [node(uuid(1))]),
                         "invalid state: duplicate node id: \(uuid(1).string)")
    }

    func testReadyOrderIsRegistrationOrderAndJoinsWaitForAllDependencies() throws {
        let (c, _) = makeCoordinator()
        let a = uuid(1), b = uuid(2), join = uuid(3), d = uuid(4)
        // The join is listed before one of its dependencies: a forward reference.
        let task = try c.registerTask(goal: "g", context: bytes("{}"),
                                      nodes: [node(a), node(join, [a, b]), node(b), node(d)])
        let first = try c.mustAcquire(task)
        let second = try c.mustAcquire(task)
        let third = try c.mustAcquire(task)
        XCTAssertEqual([first.0, second.0, third.0], [a, b, d])
        XCTAssertNil(try c.acquireNextNode(task: task, owner: "w"))
        _ = try c.completeNode(task: task, node: a, lease: first.1, result: bytes("{\"x\":1}"))
        XCTAssertNil(try c.acquireNextNode(task: task, owner: "w"), "join must wait for b")
        _ = try c.completeNode(task: task, node: b, lease: second.1, result: bytes("2"))
        let joined = try c.mustAcquire(task)
        XCTAssertEqual(joined.0, join)
        XCTAssertEqual(c.counters.acquireAttempts, 6)
        XCTAssertEqual(c.counters.acquiredNodes, 4)
    }

    func testCountsFollowEveryTransition() throws {
        let (c, _) = makeCoordinator()
        let task = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(uuid(1)), node(uuid(2))])
        let record = try c.task(task)
        XCTAssertEqual(record.counts, [2, 0, 0, 0])
        let (n1, l1) = try c.mustAcquire(task)
        XCTAssertEqual(record.counts, [1, 1, 0, 0])
        _ = try c.failNode(task: task, node: n1, lease: l1, error: bytes("\"boom\""))
        XCTAssertEqual(record.counts, [1, 0, 0, 1])
        XCTAssertEqual(c.totals.nodeCounts, [1, 0, 0, 1])
        XCTAssertEqual(record.nodes[0].result, bytes("\"boom\""))
    }

    func testChangeSetRecordsEachRowOnce() throws {
        let (c, _) = makeCoordinator()
        let task = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(uuid(1))])
        let (n, l) = try c.mustAcquire(task)
        try c.heartbeatNode(task: task, node: n, lease: l)
        // Inserted this turn: the insert carries the latest state, no separate update.
        XCTAssertEqual(c.changes.newTasks.count, 1)
        XCTAssertEqual(c.changes.newNodes.count, 1)
        XCTAssertEqual(c.changes.dirtyNodes.count, 0)
        c.changes.removeAll()
        c.task(slot: 0)!.nodes[0].persist = .clean
        try c.heartbeatNode(task: task, node: n, lease: l)
        try c.heartbeatNode(task: task, node: n, lease: l)
        XCTAssertEqual(c.changes.dirtyNodes.count, 1)
    }
}
