import XCTest
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
            XCTAssertEqual(names, Method.allCases.map(\.name))
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
}
