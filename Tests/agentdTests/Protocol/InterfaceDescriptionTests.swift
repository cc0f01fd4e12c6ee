import XCTest
import Foundation
import AgentdClient
@testable import AgentdBase
@testable import AgentdCore
@testable import AgentdStore
@testable import AgentdProtocol
@testable import agentd

final class InterfaceDescriptionTests: XCTestCase {
    /// DescribeInterface must stay valid JSON and name every method the daemon answers to.
    func testIsValidJSONAndListsEveryMethod() throws {
        let bytes = InterfaceDescription.json()
        var tape = JSONTape()
        try bytes.withUnsafeBytes { raw in
            try tape.parse(raw)
            let document = JSONDocument(tape: tape, input: raw)
            let methods = try XCTUnwrap(document.member(document.root, "methods"))
            var names: [String] = []
            for entry in document.elements(methods) {
                names.append(document.string(try XCTUnwrap(document.member(entry, "method"))))
                XCTAssertNotNil(document.member(entry, "params"))
                XCTAssertNotNil(document.member(entry, "result"))
            }
            XCTAssertEqual(names, Method.allCases.map(\.name) + ["Authenticate"])
        }
    }

    func testMethodTableFindsEveryNameAndAlias() {
        let table = MethodTable()
        for method in Method.allCases {
            XCTAssertEqual(table.lookup(method.name), method)
            XCTAssertEqual(table.lookup(Method.snakeCase(method.name)), method)
        }
        XCTAssertEqual(table.lookup("GetTaskStatus"), .taskStatus)
        XCTAssertEqual(table.lookup("get_task_status"), .taskStatus)
        XCTAssertEqual(Method.snakeCase("AcquireNextNode"), "acquire_next_node")
        XCTAssertNil(table.lookup("acquirenextnode"))
    }

    /// DescribeInterface lists each method's params exactly as the method table declares them.
    func testParamsComeFromTheMethodTable() throws {
        let description = try JSONValue.parse(InterfaceDescription.json())
        for entry in try XCTUnwrap(description["methods"]?.arrayValue) where entry["method"] != "Authenticate" {
            let method = try XCTUnwrap(MethodTable().lookup(try XCTUnwrap(entry["method"]?.stringValue)))
            let listed = try XCTUnwrap(entry["params"]?.objectValue)
            XCTAssertEqual(listed.keys, method.params.map(\.nameText), method.name)
            for param in method.params {
                XCTAssertEqual(listed[param.nameText]?.stringValue, param.typeText + ": " + param.summary)
            }
        }
        XCTAssertEqual(description["node_definition"]?.objectValue?.keys, Param.nodeDefinitionFields.map(\.nameText))
    }

    /// docs/PROTOCOL.md's params section is the table's own rendering. AGENTD_WRITE_DOCS=1 rewrites
    /// it after the table changed.
    func testProtocolDocumentListsTheTableParams() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("docs/PROTOCOL.md").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let begin = try XCTUnwrap(text.range(of: ParamsReference.beginMarker), "no params section in \(path)")
        let end = try XCTUnwrap(text.range(of: ParamsReference.endMarker, range: begin.upperBound..<text.endIndex))
        let written = text[begin.upperBound..<end.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
        let expected = ParamsReference.markdown()
        if written != expected, ProcessInfo.processInfo.environment["AGENTD_WRITE_DOCS"] == "1" {
            let updated = text.replacingCharacters(in: begin.upperBound..<end.lowerBound, with: "\n\n" + expected + "\n\n")
            try updated.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        XCTAssertEqual(written, expected, "docs/PROTOCOL.md's params differ from the method table: run the test with AGENTD_WRITE_DOCS=1")
    }
}
