import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdProtocol

/// The acquire context's journal slice, kept encoded between acquires, is always what a fresh
/// encoding of the task's last events gives, as the window slides.
final class RecentEventsCacheTests: XCTestCase {
    func testTheKeptWindowMatchesAFreshEncodingAsItSlides() throws {
        let clock = ManualClock()
        let c = Coordinator(settings: .init(nodeTimeoutSecs: 300, contextEventLimit: 3), clock: clock)
        let taskId = try c.registerTask(goal: "g", context: Array("{}".utf8), nodes: [NodeDefinition()])
        let node = try c.task(taskId).nodes[0].id
        let cache = RecentEventsCache()
        for round in 0..<8 {
            for i in 0..<round % 3 {
                _ = try c.commitEvent(task: taskId, node: node, lease: nil, actionType: "E\(round).\(i)",
                                      payload: Array("\(i)".utf8))
            }
            for limit in [3, 1, 5] {
                var kept: [UInt8] = [], fresh: [UInt8] = []
                cache.appendRecentEvents(of: try c.task(taskId), limit: limit, to: &kept)
                RecentEventsCache().appendRecentEvents(of: try c.task(taskId), limit: limit, to: &fresh)
                XCTAssertEqual(String(decoding: kept, as: UTF8.self), String(decoding: fresh, as: UTF8.self),
                               "round \(round), limit \(limit)")
            }
        }
        XCTAssertEqual(try c.task(taskId).events.count, 7)
    }
}
