import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

/// A sanity micro-benchmark, not an assertion: prints ns per request for a typical
/// request/response cycle. Runs a token number of iterations by default; for real
/// numbers: JSON_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter JSONBenchmark
final class JSONBenchmarkTests: XCTestCase {
    private let request = Array(#"""
    {"id":42,"method":"task.create","params":{"session":"0123abcd-4567-89ef-fedc-ba9876543210","payload":{"kind":"shell","argv":["ls","-la","/tmp"],"env":{"A":"1","B":"two"}},"priority":5,"tags":["alpha","beta"],"note":"line\nbreak"}}
    """#.utf8)

    private var iterations: Int {
        ProcessInfo.processInfo.environment["JSON_BENCH"] != nil ? 2_000_000 : 1_000
    }

    func testRequestCycle() throws {
        var tape = JSONTape()
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        var generator = UUIDGenerator(seed: 7)
        var checksum = 0
        let n = iterations

        let parseOnly = try measureNanos(n) {
            try request.withUnsafeBytes { try tape.parse($0) }
            checksum &+= tape.tokens.count
        }
        let full = try measureNanos(n) {
            try request.withUnsafeBytes { input in
                try tape.parse(input)
                let doc = JSONDocument(tape: tape, input: input)
                guard let id = doc.member(doc.root, "id").flatMap(doc.int64),
                      let method = doc.member(doc.root, "method"), doc.stringEquals(method, "task.create"),
                      let params = doc.member(doc.root, "params"),
                      let session = doc.member(params, "session").map({ doc.rawStringContents($0) }).flatMap(UUID128.init(parsing:)),
                      let priority = doc.member(params, "priority").flatMap(doc.int64),
                      let payload = doc.member(params, "payload")
                else { throw JSONError(message: "bad request") }
                out.removeAll(keepingCapacity: true)
                doc.appendCompact(payload, to: &out)  // as stored in SQLite
                out.removeAll(keepingCapacity: true)
                out.appendASCII("{\"id\":")
                out.appendJSONInt(id)
                out.appendASCII(",\"ok\":true,\"result\":{\"task\":\"")
                generator.next().append(to: &out)
                out.appendASCII("\",\"session\":\"")
                session.append(to: &out)
                out.appendASCII("\",\"priority\":")
                out.appendJSONInt(priority)
                out.appendASCII(",\"created\":\"")
                ISOTime.append(unixMs: 1_709_210_096_789, to: &out)
                out.appendASCII("\",\"note\":")
                out.appendJSONString(doc.string(doc.member(params, "note")!))
                out.appendASCII("}}\n")
                checksum &+= out.count
            }
        }
        print("JSON benchmark (\(n) iterations, \(request.count)-byte request): parse \(parseOnly) ns, parse+read+respond \(full) ns; \(checksum)")
        XCTAssertTrue(String(decoding: out, as: UTF8.self).hasPrefix("{\"id\":42,\"ok\":true"))
    }

    private func measureNanos(_ n: Int, _ body: () throws -> Void) rethrows -> Int {
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0 ..< n { try body() }
        let elapsed = clock.now - start
        let nanos = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        return Int(nanos) / n
    }
}
