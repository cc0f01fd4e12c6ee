import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

final class JSONUTF8Tests: XCTestCase {
    private func quoted(_ bytes: [UInt8]) -> [UInt8] {
        [0x22, 0x61] + bytes + [0x62, 0x22]  // "a<bytes>b"
    }

    func testValidSequencesAccepted() throws {
        let valid: [[UInt8]] = [
            [0xC2, 0x80], [0xDF, 0xBF],              // 2-byte bounds
            [0xE0, 0xA0, 0x80], [0xEF, 0xBF, 0xBF],  // 3-byte bounds
            [0xED, 0x9F, 0xBF],                      // U+D7FF, just below surrogates
            [0xEE, 0x80, 0x80],                      // U+E000, just above
            [0xF0, 0x90, 0x80, 0x80],                // U+10000
            [0xF4, 0x8F, 0xBF, 0xBF],                // U+10FFFF
        ]
        for bytes in valid {
            try withJSONDocument(quoted(bytes)) { doc in
                XCTAssertEqual(Array(doc.string(doc.root).utf8), [0x61] + bytes + [0x62])
            }
        }
    }

    func testInvalidSequencesRejected() {
        let invalid: [(String, [UInt8])] = [
            ("lone continuation", [0x80]),
            ("lone continuation (last)", [0xBF]),
            ("overlong 2-byte C0", [0xC0, 0xAF]),
            ("overlong 2-byte C1", [0xC1, 0xBF]),
            ("overlong 3-byte", [0xE0, 0x80, 0xAF]),
            ("overlong 4-byte", [0xF0, 0x80, 0x80, 0xAF]),
            ("surrogate D800", [0xED, 0xA0, 0x80]),
            ("surrogate DFFF", [0xED, 0xBF, 0xBF]),
            ("above U+10FFFF", [0xF4, 0x90, 0x80, 0x80]),
            ("F5 lead", [0xF5, 0x80, 0x80, 0x80]),
            ("FF", [0xFF]),
            ("truncated 2-byte", [0xC3]),
            ("truncated 3-byte", [0xE2, 0x82]),
            ("truncated 4-byte", [0xF0, 0x9F, 0x98]),
            ("lead then ASCII", [0xE2, 0x41, 0x41]),
        ]
        for (name, bytes) in invalid {
            let message = jsonParseError(quoted(bytes))
            XCTAssertEqual(message, "invalid UTF-8 at byte 2", name)
        }
    }

    func testTruncatedAtEndOfInput() {
        assertJSONRejected([0x22, 0xE2, 0x82], "invalid UTF-8 at byte 1")
    }

    func testInvalidUTF8OutsideStrings() {
        assertJSONRejected([0x5B, 0x80, 0x5D], "invalid UTF-8 at byte 1")
        assertJSONRejected([0x31, 0x20, 0xFF], "invalid UTF-8 at byte 2")
        // Valid UTF-8 but not JSON: a plain syntax error.
        assertJSONRejected([0x5B, 0xC3, 0xA9, 0x5D], "expected value at column 2")
    }

    func testInvalidUTF8InLongString() {
        var bytes: [UInt8] = [0x22] + Array(repeating: 0x61, count: 21)
        bytes += [0xED, 0xA0, 0x80, 0x22]
        assertJSONRejected(bytes, "invalid UTF-8 at byte 22")
    }
}
