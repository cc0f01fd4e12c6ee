import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

/// A Coordinator on a hand-moved clock with deterministic ids.
func makeCoordinator(timeoutSecs: Int64 = 300, eventLimit: Int = 50) -> (Coordinator, ManualClock) {
    let clock = ManualClock()
    let coordinator = Coordinator(settings: .init(nodeTimeoutSecs: timeoutSecs, contextEventLimit: eventLimit),
                                  clock: clock, ids: UUIDGenerator(seed: 42))
    return (coordinator, clock)
}

func uuid(_ n: UInt64) -> UUID128 { UUID128(hi: 0x1111_0000_0000_4000 | n, lo: 0x8000_0000_0000_0000 | n) }

func node(_ id: UUID128, _ dependencies: [UUID128] = [], maxAttempts: Int32 = 0) -> NodeDefinition {
    NodeDefinition(id: id, dependencies: dependencies, payloadSchema: Array("{}".utf8), maxAttempts: maxAttempts)
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

extension Coordinator {
    /// Acquires and returns (node id, lease id), failing the test when nothing is runnable.
    func mustAcquire(_ task: UUID128, owner: String = "w", file: StaticString = #filePath, line: UInt = #line) throws -> (UUID128, UUID128) {
        guard let ref = try acquireNextNode(task: task, owner: owner) else {
            XCTFail("nothing runnable", file: file, line: line)
            throw CoordinatorError.taskNotFound(task)
        }
        let node = self.task(slot: ref.task)!.nodes[Int(ref.index)]
        return (node.id, node.lease!.id)
    }

    func status(_ task: UUID128, _ node: UUID128) throws -> NodeStatus {
        let (record, index) = try nodeRef(task: task, node: node)
        return record.nodes[Int(index)].status
    }
}

func XCTAssertRefused(_ expression: @autoclosure () throws -> Any?, _ message: String,
                      file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try expression()
        XCTFail("expected refusal: \(message)", file: file, line: line)
    } catch let error as CoordinatorError {
        XCTAssertEqual(error.message, message, file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}
