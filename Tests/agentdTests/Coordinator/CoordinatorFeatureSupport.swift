import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

/// Records every parked request the Coordinator resolves, in order.
final class ParkedAnswers {
    private(set) var entries: [(waiter: Waiter, outcome: WaiterOutcome)] = []

    init(_ coordinator: Coordinator) {
        coordinator.onWaiterResolved = { waiter, outcome in
            self.entries.append((waiter, outcome))
        }
    }

    var ids: [UInt64] { entries.map { $0.waiter.id } }

    func outcome(of id: UInt64) -> WaiterOutcome? {
        entries.first { $0.waiter.id == id }?.outcome
    }

    func count(of id: UInt64) -> Int { entries.filter { $0.waiter.id == id }.count }
}

extension WaiterOutcome {
    var acquiredRef: NodeRef? {
        if case let .acquired(ref) = self { return ref }
        return nil
    }

    var grantedLockSlot: Int32? {
        if case let .lockGranted(slot) = self { return slot }
        return nil
    }

    var isNothing: Bool {
        if case .nothing = self { return true }
        return false
    }

    var eventsRequest: (task: Int32, node: Int32?, afterSeq: Int64, limit: Int)? {
        if case let .events(task, node, afterSeq, limit) = self { return (task, node, afterSeq, limit) }
        return nil
    }
}

extension Coordinator {
    /// The id of the node a NodeRef points at.
    func nodeId(_ ref: NodeRef) -> UUID128 { task(slot: ref.task)!.nodes[Int(ref.index)].id }

    /// The node record itself.
    func nodeRecord(_ task: UUID128, _ node: UUID128) throws -> Node {
        let (record, index) = try nodeRef(task: task, node: node)
        return record.nodes[Int(index)]
    }

    /// Parks an AcquireNextNode and returns the waiter id, failing the test when it was not parked.
    func mustPark(_ task: UUID128, owner: String = "w", connection: UInt64 = 1, waitMs: Int64 = 60_000,
                  releaseOnDisconnect: Bool = false, leaseTTLSecs: Int64? = nil,
                  file: StaticString = #filePath, line: UInt = #line) throws -> UInt64 {
        let answer = try acquireNextNode(task: task, owner: owner, leaseTTLSecs: leaseTTLSecs,
                                         releaseOnDisconnect: releaseOnDisconnect, connection: connection,
                                         waitMs: waitMs)
        guard case let .parked(id) = answer else {
            XCTFail("expected the acquire to park, got \(answer)", file: file, line: line)
            return 0
        }
        return id
    }

    /// Parks an AcquireResourceLock and returns the waiter id.
    func mustParkLock(_ request: LockRequest, connection: UInt64, waitMs: Int64 = 60_000,
                      file: StaticString = #filePath, line: UInt = #line) throws -> UInt64 {
        let answer = try acquireLock(request, connection: connection, waitMs: waitMs)
        guard case let .parked(id) = answer else {
            XCTFail("expected the lock request to park, got \(answer)", file: file, line: line)
            return 0
        }
        return id
    }

    /// The seqs of a page of events.
    func seqs(_ task: TaskRecord, node: Int32?, afterSeq: Int64, limit: Int) -> [Int64] {
        events(of: task, node: node, afterSeq: afterSeq, limit: limit).map { task.events[Int($0)].seq }
    }
}

/// A payload (an event's, a result) as text; "nil" when there is none.
func payloadText(_ payload: [UInt8]?) -> String { payload.map { String(decoding: $0, as: UTF8.self) } ?? "nil" }

/// Asserts that an expression is refused with the given reason (and message, when given).
func XCTAssertRefused(_ expression: @autoclosure () throws -> Any?, reason: CoordinatorError.Reason,
                      _ message: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try expression()
        XCTFail("expected refusal with \(reason)", file: file, line: line)
    } catch let error as CoordinatorError {
        XCTAssertEqual(error.reason, reason, error.message, file: file, line: line)
        if let message { XCTAssertEqual(error.message, message, file: file, line: line) }
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}
