import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

final class JSONParserTests: XCTestCase {
    func testEveryKind() throws {
        try withJSONDocument(#" {"o":{},"a":[],"s":"x","n":-1.5,"t":true,"f":false,"z":null} "#) { doc in
            XCTAssertEqual(doc.kind(doc.root), .object)
            XCTAssertEqual(doc.count(doc.root), 7)
            let expected: [(StaticString, JSONKind)] = [
                ("o", .object), ("a", .array), ("s", .string), ("n", .number),
                ("t", .bool), ("f", .bool), ("z", .null),
            ]
            for (key, kind) in expected {
                XCTAssertEqual(doc.member(doc.root, key).map(doc.kind), kind, "\(key)")
            }
            XCTAssertEqual(doc.bool(doc.member(doc.root, "t")!), true)
            XCTAssertEqual(doc.bool(doc.member(doc.root, "f")!), false)
            XCTAssertTrue(doc.isNull(doc.member(doc.root, "z")!))
        }
    }

    func testScalarRoots() throws {
        for json in ["0", "\"\"", "true", "false", "null", " \t\r\n42\n"] {
            try withJSONDocument(json) { doc in
                XCTAssertEqual(doc.tape.tokens.count, 1, json)
                XCTAssertEqual(doc.tape.tokens[0].next, 1, json)
            }
        }
    }

    func testTokenOffsets() throws {
        try withJSONDocument(#"{"ab":[1,"c\n"]}"#) { doc in
            let t = doc.tape.tokens
            XCTAssertEqual(t.count, 5)
            // object
            XCTAssertEqual(t[0].kind, .object)
            XCTAssertEqual([t[0].start, t[0].end, t[0].next, t[0].count], [0, 16, 5, 1])
            // key: inside the quotes
            XCTAssertEqual(t[1].kind, .string)
            XCTAssertEqual([t[1].start, t[1].end, t[1].next, t[1].count], [2, 4, 2, 0])
            // array
            XCTAssertEqual(t[2].kind, .array)
            XCTAssertEqual([t[2].start, t[2].end, t[2].next, t[2].count], [6, 15, 5, 2])
            XCTAssertEqual(t[3].kind, .number)
            XCTAssertEqual([t[3].start, t[3].end, t[3].next], [7, 8, 4])
            // escaped string
            XCTAssertEqual([t[4].start, t[4].end, t[4].next, t[4].count], [10, 13, 5, 1])
        }
    }

    func testNextSkipsWholeSubtrees() throws {
        let json = #"[[1,[2,[3]]],{"a":{"b":[4,5]}},6]"#
        try withJSONDocument(json) { doc in
            let elements = Array(doc.elements(doc.root))
            XCTAssertEqual(elements.count, 3)
            XCTAssertEqual(doc.kind(elements[0]), .array)
            XCTAssertEqual(doc.kind(elements[1]), .object)
            XCTAssertEqual(doc.int64(elements[2]), 6)
            XCTAssertEqual(Int(doc.tape.tokens[elements[1]].next), elements[2])
            XCTAssertEqual(Int(doc.tape.tokens[doc.root].next), doc.tape.tokens.count)
            let b = doc.member(doc.member(elements[1], "a")!, "b")!
            XCTAssertEqual(doc.elements(b).map { doc.int64($0)! }, [4, 5])
            XCTAssertEqual(String(decoding: doc.raw(elements[1]), as: UTF8.self), #"{"a":{"b":[4,5]}}"#)
        }
    }

    func testNumbersAccepted() throws {
        let cases: [(String, Int64?)] = [
            ("0", 0), ("-0", 0), ("7", 7), ("-12", -12), ("1e5", nil), ("1.5E-3", nil),
            ("1E+2", nil), ("1.0", nil), ("0.5", nil), ("-0.0e0", nil),
            ("9223372036854775807", Int64.max), ("-9223372036854775808", Int64.min),
            ("9223372036854775808", nil), ("-9223372036854775809", nil),
            ("123456789012345678901234567890", nil),
        ]
        for (json, value) in cases {
            try withJSONDocument(json) { doc in
                XCTAssertEqual(doc.kind(doc.root), .number, json)
                XCTAssertEqual(doc.int64(doc.root), value, json)
                XCTAssertEqual(String(decoding: doc.raw(doc.root), as: UTF8.self), json)
            }
        }
        try withJSONDocument("1.5E-3") { XCTAssertEqual($0.double($0.root), 0.0015) }
        try withJSONDocument("\"1\"") { XCTAssertNil($0.int64($0.root)) }
    }

    func testNumbersRejected() {
        assertJSONRejected("01", "leading zero")
        assertJSONRejected("-01", "leading zero")
        assertJSONRejected("1.", "expected digit after '.'")
        assertJSONRejected("1.e5", "expected digit after '.'")
        assertJSONRejected(".5", "expected value")
        assertJSONRejected("+1", "expected value")
        assertJSONRejected("-", "invalid number")
        assertJSONRejected("-a", "invalid number")
        assertJSONRejected("1e", "expected exponent digit")
        assertJSONRejected("1e+", "expected exponent digit")
        assertJSONRejected("NaN", "expected value")
        assertJSONRejected("Infinity", "expected value")
        assertJSONRejected("-Infinity", "invalid number")
        assertJSONRejected("0x10", "trailing characters")
        assertJSONRejected("[1 2]", "expected ',' or ']'")
    }

    func testLiteralsRejected() {
        assertJSONRejected("tru", "expected value")
        assertJSONRejected("nul", "expected value")
        assertJSONRejected("True", "expected value")
        assertJSONRejected("truex", "trailing characters at column 5")
        assertJSONRejected("[fals]", "expected value at column 2")
    }

    func testStructureRejected() {
        assertJSONRejected("", "empty input")
        assertJSONRejected("   ", "unexpected end of input at column 4")
        assertJSONRejected("[", "unexpected end of input")
        assertJSONRejected("[1,", "unexpected end of input")
        assertJSONRejected("[1,]", "expected value at column 4")
        assertJSONRejected(#"{"a":1,}"#, "expected string key at column 8")
        assertJSONRejected(#"{"a" 1}"#, "expected ':' at column 6")
        assertJSONRejected("{1:2}", "expected string key")
        assertJSONRejected(#"{"a":1]"#, "expected ',' or '}'")
        assertJSONRejected("[1}", "expected ',' or ']'")
        assertJSONRejected("]", "expected value")
        assertJSONRejected("{} {}", "trailing characters at column 4")
        assertJSONRejected("1 2", "trailing characters at column 3")
        assertJSONRejected(#"{"a":1}x"#, "trailing characters at column 8")
        assertJSONRejected("[1]\u{0}", "trailing characters")
        assertJSONRejected("\u{FEFF}1", "expected value")  // no BOM
        assertJSONRejected("'a'", "expected value")
    }

    func testNestingLimit() throws {
        let ok = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        try withJSONDocument(ok) { XCTAssertEqual($0.tape.tokens.count, 128) }
        let okObjects = String(repeating: #"{"a":"#, count: 128) + "1" + String(repeating: "}", count: 128)
        try withJSONDocument(okObjects) { XCTAssertEqual($0.tape.tokens.count, 257) }

        assertJSONRejected(String(repeating: "[", count: 129) + String(repeating: "]", count: 129), "nesting too deep")
        // Far past any stack: refused quickly, no crash.
        assertJSONRejected(String(repeating: "[", count: 1_000_000), "nesting too deep")
        assertJSONRejected(String(repeating: #"{"a":"#, count: 200_000), "nesting too deep")
    }

    func testSiblingsDoNotCountAsDepth() throws {
        let many = "[" + Array(repeating: "[[]]", count: 1000).joined(separator: ",") + "]"
        try withJSONDocument(many) { XCTAssertEqual($0.count($0.root), 1000) }
    }

    func testTapeIsReused() throws {
        var tape = JSONTape()
        let big = Array(("[" + Array(repeating: "1", count: 500).joined(separator: ",") + "]").utf8)
        try big.withUnsafeBytes { try tape.parse($0) }
        let capacity = tape.tokens.capacity
        try Array("[1,2]".utf8).withUnsafeBytes { try tape.parse($0) }
        XCTAssertEqual(tape.tokens.count, 3)
        XCTAssertEqual(tape.tokens.capacity, capacity)
    }

    func testWhitespaceEverywhere() throws {
        try withJSONDocument(" \n{ \"a\" :\t[ 1 , { } , [ ] ] ,\r\n\"b\" : null } \n") { doc in
            XCTAssertEqual(doc.count(doc.member(doc.root, "a")!), 3)
            XCTAssertTrue(doc.isNull(doc.member(doc.root, "b")!))
        }
    }
}
