// Integration test support: the base class of the integration tests. It owns the daemons,
// clients and temporary directories a test makes and cleans them up in tearDown, and holds
// the assertions and small protocol helpers that the scenarios share.

import XCTest
import Foundation
import AgentdClient
#if canImport(Glibc)
import Glibc
#endif

class IntegrationTestCase: XCTestCase {
    private var daemons: [ITDaemon] = []
    private var clients: [ITLineClient] = []
    private var connections: [AgentdConnection] = []
    private var directories: [String] = []

    override class func setUp() {
        super.setUp()
        // A daemon that closes on us must give EPIPE, not kill the test runner.
        signal(SIGPIPE, SIG_IGN)
    }

    override func tearDown() {
        // A connection that has ended has closed its socket; its number may be another's now.
        for connection in connections where connection.isOpen { connection.close() }
        connections.removeAll()
        for client in clients { client.close() }
        clients.removeAll()
        let failed = (testRun?.totalFailureCount ?? 0) > 0
        for daemon in daemons {
            daemon.crash()
            if failed {
                print("[\(name)] daemon in \(daemon.directory):\n\(daemon.stderrText)")
            }
        }
        daemons.removeAll()
        for directory in directories {
            if failed {
                print("[\(name)] kept \(directory)")
            } else {
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
        directories.removeAll()
        super.tearDown()
    }

    // MARK: Resources

    func makeTempDir() throws -> String {
        let directory = try itMakeTempDir()
        directories.append(directory)
        return directory
    }

    /// A daemon in a fresh directory, started and ready unless `start` is false.
    func makeDaemon(_ arguments: [String] = [], environment: [String: String] = [:], start: Bool = true) throws -> ITDaemon {
        let daemon = try ITDaemon(directory: try makeTempDir(), arguments: arguments, environment: environment)
        daemons.append(daemon)
        if start { try daemon.start() }
        return daemon
    }

    /// A second daemon sharing a directory (and by default the socket) with `other`.
    func makeDaemon(beside other: ITDaemon, arguments: [String] = [], environment: [String: String] = [:]) throws -> ITDaemon {
        let daemon = try ITDaemon(directory: other.directory, arguments: arguments, environment: environment)
        daemons.append(daemon)
        return daemon
    }

    func connect(_ daemon: ITDaemon) throws -> ITLineClient {
        let client = try daemon.connect()
        clients.append(client)
        return client
    }

    /// An AgentdConnection (the client every tool shares) to `daemon`, closed in tearDown.
    /// For tests that only make calls and look at the results; tests about the bytes on the
    /// wire use `connect`.
    func openConnection(_ daemon: ITDaemon) throws -> AgentdConnection {
        let connection = try AgentdConnection(socketPath: daemon.socketPath)
        connections.append(connection)
        return connection
    }

    // MARK: Waiting

    /// Poll `condition` every 10 ms until it holds; throw after `timeout`.
    func waitUntil(_ what: String, timeout: TimeInterval = 10, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while try !condition() {
            if Date() > deadline { throw ITError("timed out after \(timeout) s waiting until \(what)") }
            usleep(10_000)
        }
    }

    /// Wall-clock Unix seconds, fractional.
    func unixNow() -> Double { Date().timeIntervalSince1970 }

    // MARK: Assertions

    /// Assert an error envelope: `{"id"?, "error":{"code","message"[,"data"]}}` with no
    /// "result". `idCanonical` nil means the answer must carry no "id" key; otherwise the
    /// canonical JSON of the expected id. `message` is compared exactly, `prefix` as a
    /// prefix, and every string of `contains` must occur in the message.
    func assertError(_ response: ITJSON, code: Int, message: String? = nil, prefix: String? = nil,
                     contains: [String] = [], idCanonical: String?, _ context: String = "",
                     file: StaticString = #filePath, line: UInt = #line) {
        let where_ = context.isEmpty ? "" : " [\(context)]"
        let error = response["error"]
        guard error.object != nil else {
            XCTFail("expected an error \(code) answer\(where_), got \(response)", file: file, line: line)
            return
        }
        XCTAssertFalse(response["result"].exists, "error answer also has a result\(where_): \(response)", file: file, line: line)
        XCTAssertEqual(error["code"].int, code, "error code\(where_): \(response)", file: file, line: line)
        let unexpected = error.keys.subtracting(["code", "message", "data"])
        XCTAssertTrue(unexpected.isEmpty, "unexpected keys \(unexpected) in error\(where_): \(response)", file: file, line: line)
        let text = error["message"].string
        XCTAssertNotNil(text, "error message is not a string\(where_): \(response)", file: file, line: line)
        let actual = text ?? ""
        if let message {
            XCTAssertEqual(actual, message, "error message\(where_)", file: file, line: line)
        }
        if let prefix {
            XCTAssertTrue(actual.hasPrefix(prefix), "error message \(actual.debugDescription) should start with \(prefix.debugDescription)\(where_)", file: file, line: line)
        }
        for fragment in contains {
            XCTAssertTrue(actual.contains(fragment), "error message \(actual.debugDescription) should mention \(fragment.debugDescription)\(where_)", file: file, line: line)
        }
        if let idCanonical {
            XCTAssertEqual(response["id"].canonical, idCanonical, "echoed id\(where_): \(response)", file: file, line: line)
        } else {
            XCTAssertFalse(response["id"].exists, "answer should carry no id\(where_): \(response)", file: file, line: line)
        }
    }

    /// Send a request with an integer id and assert it is answered with an error.
    @discardableResult
    func expectError(_ client: ITLineClient, _ method: String, _ params: Any?, code: Int,
                     message: String? = nil, prefix: String? = nil, contains: [String] = [],
                     file: StaticString = #filePath, line: UInt = #line) throws -> ITJSON {
        let response = try client.rawCall(method, params)
        assertError(response, code: code, message: message, prefix: prefix, contains: contains,
                    idCanonical: response["id"].exists ? response["id"].canonical : "<id missing>",
                    "\(method) \(itJSONText(params ?? NSNull()))", file: file, line: line)
        return response
    }

    /// Assert a JSON value equals a JSON literal (compared canonically).
    func assertJSON(_ value: ITJSON, _ literal: String, _ context: String = "",
                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(value.canonical, itCanonical(literal), context, file: file, line: line)
    }

    /// Assert `object` has every key of `keys`.
    func assertHasKeys(_ object: ITJSON, _ keys: [String], _ context: String = "",
                       file: StaticString = #filePath, line: UInt = #line) {
        guard object.object != nil else {
            XCTFail("\(context): not an object: \(object)", file: file, line: line)
            return
        }
        let missing = Set(keys).subtracting(object.keys)
        XCTAssertTrue(missing.isEmpty, "\(context): missing keys \(missing.sorted()) in \(object)", file: file, line: line)
    }

    // MARK: Protocol helpers

    /// A node definition for RegisterTask.
    func nodeDef(_ id: String, _ dependencies: [String] = [], schema: Any = [String: Any]()) -> [String: Any] {
        ["id": id, "dependencies": dependencies, "payload_schema": schema]
    }

    /// RegisterTask; returns the task id.
    func registerTask(_ client: ITLineClient, goal: String = "integration goal", context: Any = [String: Any](),
                      nodes: [[String: Any]]) throws -> String {
        let result = try client.call("RegisterTask", ["goal": goal, "context": context, "initial_nodes": nodes])
        guard let taskID = result["task_id"].string else { throw ITError("RegisterTask result has no task_id: \(result)") }
        return taskID
    }

    /// AcquireNextNode; throws if the answer is null.
    func acquire(_ client: ITLineClient, _ taskID: String, owner: String? = nil) throws -> ITJSON {
        var params: [String: Any] = ["task_id": taskID]
        if let owner { params["lease_owner"] = owner }
        let result = try client.call("AcquireNextNode", params)
        if result.isNull { throw ITError("AcquireNextNode \(itJSONText(params)) answered null, expected a node") }
        return result
    }

    func taskStatus(_ client: ITLineClient, _ taskID: String) throws -> ITJSON {
        try client.call("TaskStatus", ["task_id": taskID])
    }

    /// The status of one node in TaskStatus.
    func nodeStatus(_ client: ITLineClient, _ taskID: String, _ nodeID: String) throws -> String? {
        let status = try taskStatus(client, taskID)
        return status["nodes"].array?.first(where: { $0["id"].string == nodeID })?["status"].string
    }

    func complete(_ client: ITLineClient, _ taskID: String, _ acquired: ITJSON, result: Any) throws -> ITJSON {
        try client.call("CompleteNode", ["task_id": taskID, "node_id": acquired["node_id"].string ?? "",
                                         "lease_id": acquired["lease_id"].string ?? "", "result_payload": result])
    }

    static let nodeKeys = ["id", "task_id", "status", "dependencies", "payload_schema", "result_payload",
                           "acquired_at", "lease_id", "lease_owner", "lease_expires_at", "updated_at"]
    static let lockKeys = ["resource_key", "lease_id", "owner", "provider", "task_id", "node_id", "metadata",
                           "acquired_at", "lease_expires_at"]
}
