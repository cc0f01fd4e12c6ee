import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

final class JSONOutputTests: XCTestCase {
    func testStringEscaping() {
        XCTAssertEqual(appendedText { $0.appendJSONString("") }, #""""#)
        XCTAssertEqual(appendedText { $0.appendJSONString("plain") }, #""plain""#)
        XCTAssertEqual(appendedText { $0.appendJSONString("a\"b\\c/d") }, #""a\"b\\c/d""#)
        XCTAssertEqual(appendedText { $0.appendJSONString("\n\r\t\u{8}\u{C}") }, #""\n\r\t\b\f""#)
        XCTAssertEqual(appendedText { $0.appendJSONString("\u{0}\u{1}\u{1F}\u{7F}") }, "\"\\u0000\\u0001\\u001f\u{7F}\"")
        XCTAssertEqual(appendedText { $0.appendJSONString("é😀€") }, "\"é😀€\"")
    }

    func testStringRoundTrips() throws {
        var tricky = [
            "", "\"", "\\", "\\\"", "\"\\\"", "end\\", "tab\there", "crlf\r\n", "😀", "a😀b\"😀\\",
            "\u{2028}\u{2029}", "\u{FEFF}", String(repeating: "\\\"", count: 50),
        ]
        tricky.append(String((0 ..< 128).map { Character(Unicode.Scalar(UInt8($0))) }))
        for s in tricky {
            var out: [UInt8] = []
            out.appendJSONString(s)
            try withJSONDocument(out) { doc in
                XCTAssertEqual(doc.string(doc.root), s)
            }
            // The bytes form agrees with the String form.
            var fromBytes: [UInt8] = []
            Array(s.utf8).withUnsafeBytes { fromBytes.appendJSONString(bytes: $0) }
            XCTAssertEqual(fromBytes, out)
        }
    }

    func testInts() {
        let cases: [(Int64, String)] = [
            (0, "0"), (7, "7"), (-7, "-7"), (10, "10"), (99, "99"), (100, "100"), (-100, "-100"),
            (1234567890, "1234567890"), (Int64.max, "9223372036854775807"),
            (Int64.min, "-9223372036854775808"), (Int64.min + 1, "-9223372036854775807"),
        ]
        for (v, s) in cases {
            XCTAssertEqual(appendedText { $0.appendJSONInt(v) }, s)
        }
        var generator = UUIDGenerator(seed: 9)
        for _ in 0 ..< 1000 {
            let v = Int64(bitPattern: generator.nextUInt64()) >> Int64(generator.nextUInt64() % 64)
            XCTAssertEqual(appendedText { $0.appendJSONInt(v) }, String(v))
        }
    }

    /// The cursor that composes whole answers writes what the array appends write, byte for byte,
    /// and what it reports as written is what it wrote, through the stack and the heap paths.
    func testCursorWritesWhatTheAppendsWrite() {
        var generator = UUIDGenerator(seed: 3)
        let strings = ["", "plain", "a\"b\\c", "\n\u{0}\u{1F}\u{7F}", "é😀€", String(repeating: "\"", count: 300),
                       String((0 ..< 128).map { Character(Unicode.Scalar(UInt8($0))) })]
        for s in strings {
            let id = generator.next()
            let int = Int64(bitPattern: generator.nextUInt64())
            var expected: [UInt8] = []
            expected.appendJSONString(s)
            expected.appendQuotedUUID(id)
            expected.appendOptionalUUID(nil)
            expected.appendJSONInt(int)
            expected.appendOptionalInt(nil)
            expected.appendASCII("null")
            expected.appendISOString(unixMs: int >> 20)
            expected.appendASCII(",\"k\":")
            expected.append(contentsOf: [0x7B, 0x7D])
            var composed: [UInt8] = [0x2A]
            composed.appendComposed(maxCount: JSONCursor.maxBytes(s) + 200) { out in
                out.string(s)
                out.quotedUUID(id)
                out.optionalUUID(nil)
                out.int(int)
                out.optionalInt(nil)
                out.optionalString(nil)
                out.isoString(unixMs: int >> 20)
                out.ascii(",\"k\":")
                out.raw([0x7B, 0x7D])
                out.raw([])
            }
            XCTAssertEqual(composed, [0x2A] + expected, s)
        }
    }

    /// A lock answer at its widest (every string all control characters, so each byte escapes to
    /// six; every integer twenty characters; every optional present) is what the appends write,
    /// in the documented key order, and stays within the bound the encoder reserves (debug builds
    /// check it), on the stack and on the heap.
    func testLockAnswerAtItsWidestIsWhatTheAppendsWrite() {
        var generator = UUIDGenerator(seed: 5)
        for length in [0, 1, 100, 400] {
            let wide = String(repeating: "\u{1}", count: length)
            let lock = ResourceLock(key: wide + "k", leaseId: generator.next(), owner: wide, provider: wide,
                                    taskId: generator.next(), nodeId: generator.next(), metadata: Array(#"{"m":[1,2]}"#.utf8),
                                    acquiredAtSecs: .min, expiresAtMs: .min, updatedAtSecs: .min, deadline: .none,
                                    fencingToken: .min)
            for withUpdatedAt in [false, true] {
                var expected: [UInt8] = []
                expected.appendASCII("{\"resource_key\":")
                expected.appendJSONString(lock.key)
                expected.appendASCII(",\"lease_id\":")
                expected.appendQuotedUUID(lock.leaseId)
                expected.appendASCII(",\"owner\":")
                expected.appendJSONString(lock.owner)
                expected.appendASCII(",\"provider\":")
                if let provider = lock.provider { expected.appendJSONString(provider) } else { expected.appendASCII("null") }
                expected.appendASCII(",\"task_id\":")
                expected.appendOptionalUUID(lock.taskId)
                expected.appendASCII(",\"node_id\":")
                expected.appendOptionalUUID(lock.nodeId)
                expected.appendASCII(",\"metadata\":")
                expected.append(contentsOf: lock.metadata)
                expected.appendASCII(",\"acquired_at\":")
                expected.appendJSONInt(lock.acquiredAtSecs)
                expected.appendASCII(",\"lease_expires_at\":")
                expected.appendJSONInt(lock.expiresAtMs / 1000)
                if withUpdatedAt {
                    expected.appendASCII(",\"updated_at\":")
                    expected.appendJSONInt(lock.updatedAtSecs)
                }
                expected.appendASCII(",\"fencing_token\":")
                expected.appendJSONInt(lock.fencingToken)
                expected.appendASCII(",\"waiters\":")
                expected.appendJSONInt(Int64(Int.min))
                expected.append(UInt8(ascii: "}"))
                var encoded: [UInt8] = []
                ResultEncoding.lock(lock, withUpdatedAt: withUpdatedAt, waiters: .min, to: &encoded)
                XCTAssertEqual(String(decoding: encoded, as: UTF8.self), String(decoding: expected, as: UTF8.self),
                               "\(length) wide, updated_at \(withUpdatedAt)")
            }
        }
    }

    func testRawAppends() {
        XCTAssertEqual(appendedText { $0.appendASCII("{\"ok\":true}") }, #"{"ok":true}"#)
        XCTAssertEqual(appendedText { $0.appendBytes([0x61, 0x62]); $0.appendBytes([]) }, "ab")
        XCTAssertEqual(appendedText { out in [UInt8](arrayLiteral: 0x78).withUnsafeBytes { out.appendRawBytes($0) } }, "x")
    }
}
