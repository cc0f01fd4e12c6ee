import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

final class JSONDocumentTests: XCTestCase {
    func testMemberLookup() throws {
        try withJSONDocument(#"{"id":1,"method":"run","params":{"x":[1,2]},"last":true}"#) { doc in
            XCTAssertEqual(doc.int64(doc.member(doc.root, "id")!), 1)
            XCTAssertEqual(doc.string(doc.member(doc.root, "method")!), "run")
            XCTAssertEqual(doc.bool(doc.member(doc.root, "last")!), true)
            XCTAssertNil(doc.member(doc.root, "missing"))
            XCTAssertNil(doc.member(doc.root, "i"))    // prefix of a key
            XCTAssertNil(doc.member(doc.root, "idx"))  // key is a prefix
            XCTAssertNil(doc.member(doc.root, "x"))    // nested keys are not members of the root
            let params = doc.member(doc.root, "params")!
            XCTAssertEqual(doc.count(doc.member(params, "x")!), 2)
            XCTAssertEqual(doc.member(doc.root, named: "method"), doc.member(doc.root, "method"))
            // Not an object: nil rather than a trap.
            XCTAssertNil(doc.member(doc.member(params, "x")!, "x"))
        }
    }

    func testMemberWithEscapedKeys() throws {
        try withJSONDocument(#"{"a\u0062c":1, "new\nline":2, "\u00e9t\u00e9":3, "q\"":4, "😀":5}"#) { doc in
            XCTAssertEqual(doc.member(doc.root, "abc").flatMap(doc.int64), 1)
            XCTAssertEqual(doc.member(doc.root, "new\nline").flatMap(doc.int64), 2)
            XCTAssertEqual(doc.member(doc.root, "été").flatMap(doc.int64), 3)
            XCTAssertEqual(doc.member(doc.root, "q\"").flatMap(doc.int64), 4)
            XCTAssertEqual(doc.member(doc.root, "😀").flatMap(doc.int64), 5)
            XCTAssertNil(doc.member(doc.root, "a\\u0062c"))  // raw form does not match
        }
    }

    func testDuplicateKeysFirstWins() throws {
        try withJSONDocument(#"{"k":1,"k":2,"k\u0000":3}"#) { doc in
            XCTAssertEqual(doc.member(doc.root, "k").flatMap(doc.int64), 1)
            XCTAssertEqual(doc.count(doc.root), 3)
        }
    }

    func testMembersAndElementsIteration() throws {
        try withJSONDocument(#"{"a":[1,[2,3],{"b":4}],"c":{},"d":"e"}"#) { doc in
            let pairs = doc.members(doc.root).map { (doc.string($0.key), doc.kind($0.value)) }
            XCTAssertEqual(pairs.map(\.0), ["a", "c", "d"])
            XCTAssertEqual(pairs.map(\.1), [.array, .object, .string])
            let a = doc.member(doc.root, "a")!
            XCTAssertEqual(doc.elements(a).map { doc.kind($0) }, [.number, .array, .object])
            XCTAssertTrue(Array(doc.members(doc.member(doc.root, "c")!)).isEmpty)
            // Wrong kind: empty sequences.
            XCTAssertTrue(Array(doc.elements(doc.root)).isEmpty)
            XCTAssertTrue(Array(doc.members(a)).isEmpty)
            XCTAssertTrue(Array(doc.members(doc.member(doc.root, "d")!)).isEmpty)
        }
    }

    func testRaw() throws {
        try withJSONDocument(#" { "s" : "x\ty" , "n" : -1.5e3 , "a" : [ 1 ] } "#) { doc in
            func raw(_ i: Int) -> String { String(decoding: doc.raw(i), as: UTF8.self) }
            XCTAssertEqual(raw(doc.member(doc.root, "s")!), #""x\ty""#)
            XCTAssertEqual(raw(doc.member(doc.root, "n")!), "-1.5e3")
            XCTAssertEqual(raw(doc.member(doc.root, "a")!), "[ 1 ]")
            XCTAssertEqual(raw(doc.root), #"{ "s" : "x\ty" , "n" : -1.5e3 , "a" : [ 1 ] }"#)
        }
    }

    func testAppendCompactOnPrettyPrintedInput() throws {
        let pretty = """
        {
          "name" : "a b\\t \\" c",
          "list" : [ 1 , 2.50 , -0 , true , false , null ],
          "nested" : {
            "empty" : { },
            "also" : [ ],
            "key with spaces" : " keep  these ",
            "\\u00e9" : "\\ud83d\\ude00"
          }
        }
        """
        let expected = #"{"name":"a b\t \" c","list":[1,2.50,-0,true,false,null],"nested":{"empty":{},"also":[],"key with spaces":" keep  these ","\u00e9":"\ud83d\ude00"}}"#
        try withJSONDocument(pretty) { doc in
            var out: [UInt8] = Array("prefix:".utf8)
            doc.appendCompact(doc.root, to: &out)
            XCTAssertEqual(String(decoding: out, as: UTF8.self), "prefix:" + expected)

            let nested = doc.member(doc.root, "nested")!
            XCTAssertEqual(appendedText { doc.appendCompact(nested, to: &$0) },
                           #"{"empty":{},"also":[],"key with spaces":" keep  these ","\u00e9":"\ud83d\ude00"}"#)
            XCTAssertEqual(appendedText { doc.appendCompact(doc.member(doc.root, "name")!, to: &$0) }, #""a b\t \" c""#)
            XCTAssertEqual(appendedText { doc.appendCompact(doc.member(doc.root, "list")!, to: &$0) },
                           "[1,2.50,-0,true,false,null]")
        }
        // Compact input comes out unchanged, and compacting is idempotent.
        try withJSONDocument(expected) { doc in
            XCTAssertEqual(appendedText { doc.appendCompact(doc.root, to: &$0) }, expected)
        }
        try withJSONDocument(" 42 ") { doc in
            XCTAssertEqual(appendedText { doc.appendCompact(doc.root, to: &$0) }, "42")
        }
    }

    func testStringOfLongEscapedValue() throws {
        let value = String(repeating: "line\n\"quoted\" é 😀 ", count: 200)
        var json: [UInt8] = []
        json.appendJSONString(value)
        try withJSONDocument(json) { doc in
            XCTAssertEqual(doc.string(doc.root), value)
            var bytes: [UInt8] = []
            doc.stringBytes(doc.root, into: &bytes)
            XCTAssertEqual(bytes, Array(value.utf8))
            XCTAssertTrue(doc.stringEquals(doc.root, string: value))
        }
    }
}
