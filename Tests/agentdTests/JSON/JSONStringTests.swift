import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

final class JSONStringTests: XCTestCase {
    func testEveryEscapeDecodes() throws {
        try withJSONDocument(#""q\" b\\ s\/ \b\f\n\r\t \u0041\u00e9\u20AC \ud83d\ude00 \u0000""#) { doc in
            XCTAssertTrue(doc.stringHasEscapes(doc.root))
            XCTAssertEqual(doc.string(doc.root), "q\" b\\ s/ \u{8}\u{C}\n\r\t Aé€ 😀 \u{0}")
            var bytes: [UInt8] = [0xFF]
            doc.stringBytes(doc.root, into: &bytes)
            XCTAssertEqual(bytes, [0xFF] + Array("q\" b\\ s/ \u{8}\u{C}\n\r\t Aé€ 😀 \u{0}".utf8))
        }
    }

    func testPlainStringsAreNotMarkedEscaped() throws {
        try withJSONDocument(#"["", "plain", "héllo 😀"]"#) { doc in
            let e = Array(doc.elements(doc.root))
            XCTAssertEqual(e.map { doc.stringHasEscapes($0) }, [false, false, false])
            XCTAssertEqual(e.map { doc.string($0) }, ["", "plain", "héllo 😀"])
            XCTAssertEqual(String(decoding: doc.raw(e[1]), as: UTF8.self), "\"plain\"")
            XCTAssertEqual(doc.rawStringContents(e[1]).count, 5)
        }
    }

    func testLongStringsCrossTheWordAtATimeScan() throws {
        // Special bytes at every position relative to the 8-byte blocks.
        for offset in 0 ..< 20 {
            let prefix = String(repeating: "a", count: offset)
            let json = "\"" + prefix + "\\n" + prefix + "é\""
            try withJSONDocument("[" + json + "]") { doc in
                let s = doc.elements(doc.root).first { _ in true }!
                XCTAssertEqual(doc.string(s), prefix + "\n" + prefix + "é")
            }
            assertJSONRejected("\"" + prefix + "\u{1}\"", "control character in string at column \(offset + 2)")
        }
    }

    func testStringEquals() throws {
        try withJSONDocument(#"["abc", "a\u0062c", "ab", "", "\u00e9"]"#) { doc in
            let e = Array(doc.elements(doc.root))
            XCTAssertTrue(doc.stringEquals(e[0], "abc"))
            XCTAssertTrue(doc.stringEquals(e[1], "abc"))
            XCTAssertFalse(doc.stringEquals(e[1], "abd"))
            XCTAssertFalse(doc.stringEquals(e[1], "abcd"))
            XCTAssertFalse(doc.stringEquals(e[2], "abc"))
            XCTAssertTrue(doc.stringEquals(e[3], ""))
            XCTAssertFalse(doc.stringEquals(e[3], "a"))
            XCTAssertTrue(doc.stringEquals(e[4], "é"))
            XCTAssertTrue(doc.stringEquals(e[4], string: "é"))
            XCTAssertFalse(doc.stringEquals(doc.root, ""))  // not a string
            XCTAssertNil(doc.stringValue(doc.root))
            XCTAssertEqual(doc.stringValue(e[0]), "abc")
        }
    }

    func testInvalidEscapesRejected() {
        assertJSONRejected(#""\a""#, "invalid escape at column 2")
        assertJSONRejected(#""\x41""#, "invalid escape")
        assertJSONRejected(#""\'""#, "invalid escape")
        assertJSONRejected(#""\U0041""#, "invalid escape")
        assertJSONRejected(#""\u00G1""#, "invalid \\u escape at column 6")
        assertJSONRejected(#""\u12""#, "invalid \\u escape")
        assertJSONRejected(#""\"#, "unterminated string")
        assertJSONRejected(#""abc"#, "unterminated string starting at column 1")
        assertJSONRejected("\"abc\\", "unterminated string")
    }

    func testUnpairedSurrogateEscapesRejected() {
        assertJSONRejected(#""\ud800""#, "unpaired surrogate")
        assertJSONRejected(#""\ud800x""#, "unpaired surrogate")
        assertJSONRejected(#""\udc00""#, "unpaired surrogate")
        assertJSONRejected(#""\ud800\u0041""#, "unpaired surrogate")
        assertJSONRejected(#""\ud800\ud800""#, "unpaired surrogate")
        assertJSONRejected(#""\ude00\ud83d""#, "unpaired surrogate")
        assertJSONRejected(#""\ud800\n""#, "unpaired surrogate")
        XCTAssertNil(jsonParseError(#""\uD83D\uDE00""#))  // upper-case hex is fine
        XCTAssertNil(jsonParseError(#""\udbff\udfff""#))  // U+10FFFF
    }

    func testControlCharactersRejected() {
        for c: UInt8 in [0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F] {
            assertJSONRejected([0x22, 0x61, c, 0x22], "control character in string at column 3")
        }
        XCTAssertNil(jsonParseError([0x22, 0x7F, 0x22]))  // DEL is allowed by RFC 8259
    }
}
