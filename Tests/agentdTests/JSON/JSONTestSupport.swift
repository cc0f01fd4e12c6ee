import XCTest
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

/// Parses `json` and hands the document to `body` while the bytes are alive.
func withJSONDocument<R>(_ json: String, file: StaticString = #filePath, line: UInt = #line,
                     _ body: (JSONDocument) throws -> R) throws -> R {
    try withJSONDocument(Array(json.utf8), file: file, line: line, body)
}

func withJSONDocument<R>(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line,
                     _ body: (JSONDocument) throws -> R) throws -> R {
    try bytes.withUnsafeBytes { buffer in
        var tape = JSONTape()
        do throws(JSONError) {
            try tape.parse(buffer)
        } catch {
            XCTFail("unexpected parse error: \(error.message)", file: file, line: line)
            throw error
        }
        return try body(JSONDocument(tape: tape, input: buffer))
    }
}

/// The parse error message for `bytes`, or nil if they parse.
func jsonParseError(_ bytes: [UInt8]) -> String? {
    bytes.withUnsafeBytes { buffer -> String? in
        var tape = JSONTape()
        do throws(JSONError) {
            try tape.parse(buffer)
            return nil
        } catch {
            XCTAssertTrue(tape.tokens.isEmpty, "tokens must be cleared after an error")
            return error.message
        }
    }
}

func jsonParseError(_ json: String) -> String? {
    jsonParseError(Array(json.utf8))
}

/// Asserts that `json` is refused with a message containing `fragment`.
func assertJSONRejected(_ json: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
    assertJSONRejected(Array(json.utf8), fragment, file: file, line: line)
}

func assertJSONRejected(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
    guard let message = jsonParseError(bytes) else {
        XCTFail("accepted \(bytes)", file: file, line: line)
        return
    }
    XCTAssertTrue(message.contains(fragment), "message \"\(message)\" lacks \"\(fragment)\"", file: file, line: line)
}

/// The bytes a closure appends to a fresh buffer, as a String.
func appendedText(_ body: (inout [UInt8]) -> Void) -> String {
    var out: [UInt8] = []
    body(&out)
    return String(decoding: out, as: UTF8.self)
}
