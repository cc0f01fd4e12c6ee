import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

final class CoordinatorLeaseTests: XCTestCase {
    func testLeaseExpiresAtItsExactInstantAndTheOldLeaseIsStale() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 10)
        let a = uuid(1)
        let task = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        let (_, oldLease) = try c.mustAcquire(task, owner: "old")
        XCTAssertEqual(c.nextDeadlineMs, clock.wallMs + 10_000)

        clock.advance(ms: 9_999)
        c.expireDue()
        XCTAssertEqual(try c.status(task, a), .running, "one millisecond early")
        clock.advance(ms: 1)
        c.expireDue()
        XCTAssertEqual(try c.status(task, a), .pending, "at the instant")
        XCTAssertEqual(c.counters.timeoutRollbacks, 1)
        XCTAssertNil(c.nextDeadlineMs)

        let (_, newLease) = try c.mustAcquire(task, owner: "new")
        XCTAssertNotEqual(oldLease, newLease)
        XCTAssertRefused(try c.completeNode(task: task, node: a, lease: oldLease, result: bytes("1")),
                         "invalid state: node \(a.string) cannot transition from RUNNING to COMPLETED")
        XCTAssertRefused(try c.heartbeatNode(task: task, node: a, lease: oldLease),
                         "node \(a.string) for task \(task.string) is not RUNNING")
        XCTAssertRefused(try c.commitEvent(task: task, node: a, lease: oldLease, actionType: "X", payload: bytes("{}")),
                         "invalid state: node \(a.string) for task \(task.string) requires the current RUNNING lease")
        XCTAssertRefused(try c.commitEvent(task: task, node: a, lease: nil, actionType: "X", payload: bytes("{}")),
                         "invalid state: node \(a.string) for task \(task.string) requires the current RUNNING lease")
        _ = try c.completeNode(task: task, node: a, lease: newLease, result: bytes("1"))
        XCTAssertRefused(try c.completeNode(task: task, node: a, lease: newLease, result: bytes("1")),
                         "invalid state: node \(a.string) cannot transition from COMPLETED to COMPLETED")
    }

    func testExpiryIsSeenByTheNextRequestEvenBeforeTheTimerFires() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 0)
        let task = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(uuid(1))])
        let first = try c.mustAcquire(task)
        clock.advance(ms: 0)
        let second = try c.mustAcquire(task)
        XCTAssertEqual(first.0, second.0)
        XCTAssertNotEqual(first.1, second.1)
    }

    func testHeartbeatMovesTheDeadline() throws {
        let (c, clock) = makeCoordinator(timeoutSecs: 10)
        let task = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(uuid(1))])
        let (n, l) = try c.mustAcquire(task)
        clock.advance(ms: 8_000)
        try c.heartbeatNode(task: task, node: n, lease: l)
        clock.advance(ms: 8_000)
        c.expireDue()
        XCTAssertEqual(try c.status(task, n), .running)
        XCTAssertEqual(c.nextDeadlineMs, clock.wallMs + 2_000)
        clock.advance(ms: 2_000)
        c.expireDue()
        XCTAssertEqual(try c.status(task, n), .pending)
        XCTAssertEqual(c.counters.heartbeats, 1)
    }

    func testCompletionCancelsTheDeadline() throws {
        let (c, _) = makeCoordinator()
        let task = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(uuid(1))])
        let (n, l) = try c.mustAcquire(task)
        XCTAssertEqual(c.deadlines.count, 1)
        _ = try c.completeNode(task: task, node: n, lease: l, result: bytes("null"))
        XCTAssertEqual(c.deadlines.count, 0)
    }

    func testJournalKeepsOrderAndCompletionPayloadShape() throws {
        let (c, _) = makeCoordinator(eventLimit: 2)
        let a = uuid(1)
        let task = try c.registerTask(goal: "g", context: bytes("{}"), nodes: [node(a)])
        let (n, l) = try c.mustAcquire(task)
        _ = try c.commitEvent(task: task, node: n, lease: l, actionType: "COMMIT_EVENT", payload: bytes("{\"m\":1}"))
        _ = try c.commitEvent(task: task, node: n, lease: l, actionType: "NOTE", payload: bytes("[]"))
        let done = try c.completeNode(task: task, node: n, lease: l, result: bytes("{\"ok\":true}"))
        let events = try c.task(task).events
        XCTAssertEqual(events.map(\.actionType), ["COMMIT_EVENT", "NOTE", "COMPLETE_NODE"])
        XCTAssertEqual(events.map(\.seq), [1, 2, 3])
        XCTAssertEqual(events.last!.id, done)
        XCTAssertEqual(events.last!.payload, bytes("{\"result\":{\"ok\":true}}"))
        // Once the node is no longer RUNNING, events need no lease.
        _ = try c.commitEvent(task: task, node: n, lease: nil, actionType: "AFTER", payload: bytes("1"))
        XCTAssertEqual(c.counters.committedEvents, 3)
    }

    func testContextCarriesTheLastEventsOldestFirst() throws {
        let (c, _) = makeCoordinator(eventLimit: 2)
        let a = uuid(1), b = uuid(2)
        let task = try c.registerTask(goal: "g", context: bytes("{\"k\":1}"), nodes: [node(a), node(b, [a])])
        let (n, l) = try c.mustAcquire(task)
        for i in 0..<3 {
            _ = try c.commitEvent(task: task, node: n, lease: l, actionType: "E\(i)", payload: bytes("\(i)"))
        }
        _ = try c.completeNode(task: task, node: n, lease: l, result: bytes("{\"r\":7}"))
        let ref = try c.acquireNextNode(task: task, owner: "x")!
        var out: [UInt8] = []
        ResultEncoding.acquired(ref.index, of: c.task(slot: ref.task)!, eventLimit: 2, recentEvents: RecentEventsCache(), to: &out)
        let text = String(decoding: out, as: UTF8.self)
        XCTAssertTrue(text.contains("\"completed_dependencies\":[{\"node_id\":\"\(a.string)\",\"result_payload\":{\"r\":7}}]"), text)
        XCTAssertTrue(text.contains("\"action_type\":\"E2\""), text)
        XCTAssertFalse(text.contains("\"action_type\":\"E1\""), text)
        XCTAssertTrue(text.range(of: "E2")!.lowerBound < text.range(of: "COMPLETE_NODE")!.lowerBound)
        XCTAssertTrue(text.contains("\"event_journal_limit\":2"), text)
    }
}
