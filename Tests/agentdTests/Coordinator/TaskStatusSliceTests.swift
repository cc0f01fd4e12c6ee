import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdProtocol
import CoordinatorInvariants

/// TaskStatus of a big task built over several slices (as the Server does, a slice a loop turn)
/// must be the task as it was when the request came, whatever happens to it between slices;
/// node paging lists a range of the nodes with where to go on.
final class TaskStatusSliceTests: XCTestCase {
    private func handler(_ c: Coordinator, streaming: Bool) -> RequestHandler {
        let h = RequestHandler(coordinator: c, storeFacts: .init(schemaVersion: 6, latestSchemaVersion: 6))
        h.streamsBigAnswers = streaming
        return h
    }

    private func call(_ h: RequestHandler, _ line: String) -> [UInt8] {
        var out: [UInt8] = []
        line.utf8CString.withUnsafeBytes { raw in
            _ = h.handle(line: UnsafeRawBufferPointer(rebasing: raw.dropLast()), connection: 1, into: &out)
        }
        return out
    }

    private func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    /// A random walk of acquires, heartbeats, completions, failures, expiries, retries and new
    /// nodes between the slices of one answer: the streamed answer equals the whole answer
    /// built at the instant the request came.
    func testSlicedAnswerIsTheTaskAsItWasWhenAsked() throws {
        for seed in 1...4 as ClosedRange<UInt64> {
            let (c, clock) = makeCoordinator(timeoutSecs: 5)
            var rng = SplitMix(seed: seed)
            let count = Int(TaskStatusStream.sliceNodes) * 2 + 777
            // A chain head, then a fan: plenty runnable, some dependencies.
            var defs = [node(uuid(1))]
            for i in 2...count { defs.append(node(uuid(UInt64(i)), i % 7 == 0 ? [uuid(1)] : [], maxAttempts: 2)) }
            let t = try c.registerTask(goal: "big", context: bytes("{}"), nodes: defs)
            // Some history first.
            var leases: [(UUID128, UUID128)] = []
            for _ in 0..<300 { leases.append(try c.mustAcquire(t)) }
            for (n, l) in leases.prefix(100) { _ = try c.completeNode(task: t, node: n, lease: l, result: bytes("{\"ok\":1}")) }
            leases.removeFirst(100)

            let whole = call(handler(c, streaming: false), #"{"id":7,"method":"TaskStatus","params":{"task_id":"\#(t)"}}"#)
            let h = handler(c, streaming: true)
            var streamed = call(h, #"{"id":7,"method":"TaskStatus","params":{"task_id":"\#(t)"}}"#)
            let stream = try XCTUnwrap(h.startedStream, "a task of \(count) nodes is answered in slices")
            var slices = 0
            // At most 600 nodes a slice: at least five slices of the 2,825 nodes, whatever the seed.
            while !stream.appendSlice(maxNodes: Int32(rng.below(600) + 1), to: &streamed) {
                slices += 1
                // Between slices: the task changes in every way it can.
                for _ in 0..<rng.below(60) {
                    switch rng.below(7) {
                    case 0: if let acquired = try? c.mustAcquire(t) { leases.append(acquired) }
                    case 1: if !leases.isEmpty {
                        let (n, l) = leases.remove(at: rng.below(leases.count))
                        _ = try c.completeNode(task: t, node: n, lease: l, result: bytes("{\"r\":\(slices)}"))
                    }
                    case 2: if !leases.isEmpty {
                        let (n, l) = leases.remove(at: rng.below(leases.count))
                        _ = try c.failNode(task: t, node: n, lease: l, error: bytes("{\"e\":\(slices)}"))
                    }
                    case 3: if let (n, l) = leases.randomElement(using: &rng) {
                        try c.heartbeatNode(task: t, node: n, lease: l, leaseTTLSecs: 9)
                    }
                    case 4:
                        clock.advance(ms: 2_500)
                        c.expireDue()
                        leases.removeAll { (n, l) in (try? c.nodeRecord(t, n).lease?.id) != l }
                    case 5: _ = try c.addNodes(task: t, nodes: [node(UUID128(hi: rng.next(), lo: rng.next()))])
                    default:
                        let failed = c.tasksById[t]!.nodes.indices.first { c.tasksById[t]!.nodes[$0].status == .failed }
                        if let failed { try c.retryNode(task: t, node: c.tasksById[t]!.nodes[failed].id) }
                    }
                }
            }
            XCTAssertGreaterThan(slices, 3)
            let differsAt = (0..<min(streamed.count, whole.count)).first { streamed[$0] != whole[$0] } ?? (streamed.count == whole.count ? nil : min(streamed.count, whole.count))
            XCTAssertNil(differsAt, "seed \(seed): the sliced answer differs from the answer at the request's instant at byte \(differsAt ?? 0): "
                         + String(decoding: streamed[max(0, (differsAt ?? 0) - 200)..<min(streamed.count, (differsAt ?? 0) + 200)], as: UTF8.self))
            XCTAssertTrue(c.tasksById[t]!.snapshots.isEmpty, "the snapshot ends with the answer")
            // And the task really did change meanwhile.
            XCTAssertNotEqual(call(handler(c, streaming: false), #"{"id":7,"method":"TaskStatus","params":{"task_id":"\#(t)"}}"#), whole)
        }
    }

    func testSmallTasksAndUnstreamedHandlersAnswerWhole() throws {
        let (c, _) = makeCoordinator()
        let t = try c.registerTask(goal: "small", context: bytes("{}"), nodes: (1...10).map { node(uuid($0)) })
        let h = handler(c, streaming: true)
        let out = call(h, #"{"id":1,"method":"TaskStatus","params":{"task_id":"\#(t)"}}"#)
        XCTAssertNil(h.startedStream)
        XCTAssertEqual(out.last, UInt8(ascii: "\n"))
        let nodes = try XCTUnwrap(try json(out)["result"] as? [String: Any])["nodes"] as? [Any]
        XCTAssertEqual(nodes?.count, 10)
    }

    func testNodePaging() throws {
        let (c, _) = makeCoordinator()
        let ids = (1...25).map { uuid($0) }
        let t = try c.registerTask(goal: "paged", context: bytes("{}"), nodes: ids.map { node($0) })
        let h = handler(c, streaming: true)
        var seen: [String] = []
        var offset: Int? = 0
        var pages = 0
        while let from = offset {
            let answer = try json(call(h, #"{"id":1,"method":"TaskStatus","params":{"task_id":"\#(t)","node_offset":\#(from),"node_limit":10}}"#))
            let result = try XCTUnwrap(answer["result"] as? [String: Any], "\(answer)")
            XCTAssertEqual((result["counts"] as? [String: Int])?["PENDING"], 25, "counts cover the whole task")
            seen += try XCTUnwrap(result["nodes"] as? [[String: Any]]).map { $0["id"] as! String }
            offset = result["next_node_offset"] as? Int
            pages += 1
        }
        XCTAssertEqual(pages, 3)
        XCTAssertEqual(seen, ids.map { $0.description }, "every node once, in registration order")

        // node_limit alone starts at the first node; an offset past the end lists nothing.
        let first = try json(call(h, #"{"method":"TaskStatus","params":{"task_id":"\#(t)","node_limit":1}}"#))["result"] as? [String: Any]
        XCTAssertEqual((first?["nodes"] as? [Any])?.count, 1)
        XCTAssertEqual(first?["next_node_offset"] as? Int, 1)
        let past = try json(call(h, #"{"method":"TaskStatus","params":{"task_id":"\#(t)","node_offset":99}}"#))["result"] as? [String: Any]
        XCTAssertEqual((past?["nodes"] as? [Any])?.count, 0)
        XCTAssertTrue(past?["next_node_offset"] is NSNull)
        // Without paging params the answer has no next_node_offset, as the original's.
        let plain = try json(call(h, #"{"method":"TaskStatus","params":{"task_id":"\#(t)"}}"#))["result"] as? [String: Any]
        XCTAssertNil(plain?["next_node_offset"])
        // Bad limits are refused.
        let bad = try json(call(h, #"{"method":"TaskStatus","params":{"task_id":"\#(t)","node_limit":0}}"#))
        XCTAssertEqual((bad["error"] as? [String: Any])?["code"] as? Int, -32602)
    }
}
