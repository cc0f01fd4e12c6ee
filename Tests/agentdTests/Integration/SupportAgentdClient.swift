// Integration test support for feature tests that talk to the daemon through AgentdClient
// (`openConnection`): the protocol helpers, error assertions and parked requests of
// IntegrationTestCase / FeatureTestCase, for an AgentdConnection and JSONValue results.

import XCTest
import Foundation
import AgentdClient

extension JSONValue {
    /// An integer, and only an integer: `1.0` and `true` are not (stricter than `intValue`).
    var int: Int? { if case .int(let i) = self { return Int(i) } else { return nil } }

    /// Compact JSON with object keys sorted: two values are equal as JSON iff these are equal.
    var canonical: String {
        switch self {
        case .object(let object):
            let members = object.members.sorted { $0.key < $1.key }
                .map { JSONValue.string($0.key).compactText + ":" + $0.value.canonical }
            return "{" + members.joined(separator: ",") + "}"
        case .array(let elements):
            return "[" + elements.map(\.canonical).joined(separator: ",") + "]"
        default:
            return compactText
        }
    }
}

/// A request sent with `AgentdConnection.send` whose answer has not been waited for (a
/// parked request): its outcome arrives on the connection's reader thread.
final class ITPendingCall: @unchecked Sendable {
    let what: String
    private let condition = NSCondition()
    private var outcome: Result<AgentdReply, Error>?

    init(_ what: String) { self.what = what }

    func finish(_ result: Result<AgentdReply, Error>) {
        condition.lock()
        outcome = result
        condition.broadcast()
        condition.unlock()
    }

    var isAnswered: Bool {
        condition.lock()
        defer { condition.unlock() }
        return outcome != nil
    }

    /// The outcome, waiting at most `timeout`; nil if there is none by then.
    func wait(timeout: TimeInterval) -> Result<AgentdReply, Error>? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while outcome == nil {
            if !condition.wait(until: deadline) { break }
        }
        return outcome
    }
}

extension IntegrationTestCase {
    // MARK: Protocol helpers over AgentdConnection

    /// A node definition for RegisterTask / AddNodes.
    func nodeSpec(_ id: String, _ dependencies: [String] = [], schema: JSONValue = [:]) -> JSONValue {
        ["id": .string(id), "dependencies": .array(dependencies.map { .string($0) }), "payload_schema": schema]
    }

    /// RegisterTask; returns the task id.
    func registerTask(_ connection: AgentdConnection, goal: String = "integration goal", context: JSONValue = [:],
                      nodes: [JSONValue]) throws -> String {
        let result = try connection.call("RegisterTask", ["goal": .string(goal), "context": context,
                                                          "initial_nodes": .array(nodes)])
        guard let taskID = result["task_id"]?.stringValue else { throw ITError("RegisterTask result has no task_id: \(result)") }
        return taskID
    }

    /// AcquireNextNode; throws if the answer is null.
    func acquire(_ connection: AgentdConnection, _ taskID: String, owner: String? = nil) throws -> JSONValue {
        var params = JSONObject([("task_id", .string(taskID))])
        if let owner { params["lease_owner"] = .string(owner) }
        let result = try connection.call("AcquireNextNode", .object(params))
        if result.isNull { throw ITError("AcquireNextNode \(JSONValue.object(params)) answered null, expected a node") }
        return result
    }

    func taskStatus(_ connection: AgentdConnection, _ taskID: String) throws -> JSONValue {
        try connection.call("TaskStatus", ["task_id": .string(taskID)])
    }

    /// The status of one node in TaskStatus.
    func nodeStatus(_ connection: AgentdConnection, _ taskID: String, _ nodeID: String) throws -> String? {
        let status = try taskStatus(connection, taskID)
        return status["nodes"]?.arrayValue?.first(where: { $0["id"]?.stringValue == nodeID })?["status"]?.stringValue
    }

    @discardableResult
    func complete(_ connection: AgentdConnection, _ taskID: String, _ acquired: JSONValue, result: JSONValue) throws -> JSONValue {
        try connection.call("CompleteNode", ["task_id": .string(taskID),
                                             "node_id": .string(acquired["node_id"]?.stringValue ?? ""),
                                             "lease_id": .string(acquired["lease_id"]?.stringValue ?? ""),
                                             "result_payload": result])
    }

    // MARK: Errors

    /// Make a call that must be answered with an error: asserts the code, and the exact
    /// message, a message prefix and fragments when given. Returns the error (nil, after a
    /// failure, when the call succeeded or failed otherwise).
    @discardableResult
    func expectError(_ connection: AgentdConnection, _ method: String, _ params: JSONValue?, code: Int64,
                     message: String? = nil, prefix: String? = nil, contains: [String] = [],
                     file: StaticString = #filePath, line: UInt = #line) -> AgentdError? {
        let context = "\(method) \(params ?? .null)"
        let error: AgentdError
        do {
            let result = try connection.call(method, params, timeout: 10)
            XCTFail("expected an error \(code) answer [\(context)], got the result \(result)", file: file, line: line)
            return nil
        } catch let daemonError as AgentdError {
            error = daemonError
        } catch let other {
            XCTFail("expected an error \(code) answer [\(context)], got \(other)", file: file, line: line)
            return nil
        }
        XCTAssertEqual(error.code, code, "error code [\(context)]: \(error)", file: file, line: line)
        if let message {
            XCTAssertEqual(error.message, message, "error message [\(context)]", file: file, line: line)
        }
        if let prefix {
            XCTAssertTrue(error.message.hasPrefix(prefix),
                          "error message \(error.message.debugDescription) should start with \(prefix.debugDescription) [\(context)]",
                          file: file, line: line)
        }
        for fragment in contains {
            XCTAssertTrue(error.message.contains(fragment),
                          "error message \(error.message.debugDescription) should mention \(fragment.debugDescription) [\(context)]",
                          file: file, line: line)
        }
        return error
    }

    /// Assert a JSON value equals a JSON literal (compared with object keys in any order).
    func assertJSON(_ value: JSONValue?, _ literal: String, _ context: String = "",
                    file: StaticString = #filePath, line: UInt = #line) {
        let expected = (try? JSONValue.parse(literal))?.canonical ?? "<bad literal \(literal)>"
        XCTAssertEqual(value?.canonical ?? "<missing>", expected, context, file: file, line: line)
    }

    /// Assert `object` has every key of `keys`.
    func assertHasKeys(_ object: JSONValue?, _ keys: [String], _ context: String = "",
                       file: StaticString = #filePath, line: UInt = #line) {
        guard let members = object?.objectValue else {
            XCTFail("\(context): not an object: \(object.map { "\($0)" } ?? "<missing>")", file: file, line: line)
            return
        }
        let missing = Set(keys).subtracting(members.keys)
        XCTAssertTrue(missing.isEmpty, "\(context): missing keys \(missing.sorted()) in \(members)", file: file, line: line)
    }
}

extension FeatureTestCase {
    // MARK: Requests in flight over AgentdConnection

    /// Send a request without waiting for its answer (it may be parked).
    @discardableResult
    func post(_ connection: AgentdConnection, _ method: String, _ params: JSONValue? = nil) -> ITPendingCall {
        let pending = ITPendingCall("\(method) \(params ?? .null)")
        connection.send(method, params) { pending.finish($0) }
        return pending
    }

    /// The result of a request sent with `post` (possibly JSON null), waiting at most
    /// `timeout`; throws if it is not answered by then or is answered with an error.
    func answer(_ pending: ITPendingCall, timeout: TimeInterval = 10) throws -> JSONValue {
        guard let outcome = pending.wait(timeout: timeout) else {
            throw ITError("\(pending.what): no answer within \(timeout) s")
        }
        return try outcome.get().result
    }

    /// The error a request sent with `post` was answered with, waiting at most `timeout`.
    func answerError(_ pending: ITPendingCall, timeout: TimeInterval = 10) throws -> AgentdError {
        guard let outcome = pending.wait(timeout: timeout) else {
            throw ITError("\(pending.what): no answer within \(timeout) s")
        }
        switch outcome {
        case .success(let reply): throw ITError("\(pending.what): expected an error, got the result \(reply.result)")
        case .failure(let error as AgentdError): return error
        case .failure(let error): throw ITError("\(pending.what): expected an error answer, got \(error)")
        }
    }

    /// Assert that a request sent with `post` is still unanswered (still parked).
    func assertSilent(_ pending: ITPendingCall, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        if let outcome = pending.wait(timeout: 0.02) {
            XCTFail("\(what): expected no answer yet, got \(outcome)", file: file, line: line)
        }
    }

    /// Make sure a request sent with `post` has been taken in and parked: a Health round
    /// trip on another connection `probe` is answered and `pending` is still unanswered.
    /// `send` has written the request before returning, and the daemon reads ready
    /// connections each loop turn, so it has handled those bytes by the time Health is answered.
    func confirmParked(_ pending: ITPendingCall, probe: AgentdConnection, _ what: String,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let health = try probe.call("Health", nil, timeout: 10)
        XCTAssertEqual(health["status"]?.stringValue, "ok", file: file, line: line)
        assertSilent(pending, what, file: file, line: line)
    }

    // MARK: Errors with reasons

    /// Make a call and assert an error answer with `code`, `error.data.reason == reason`
    /// and (if given) the exact message or a message prefix.
    @discardableResult
    func expectReason(_ connection: AgentdConnection, _ method: String, _ params: JSONValue?, code: Int64 = -32000,
                      reason: String, message: String? = nil, prefix: String? = nil,
                      file: StaticString = #filePath, line: UInt = #line) -> AgentdError? {
        let error = expectError(connection, method, params, code: code, message: message, prefix: prefix,
                                file: file, line: line)
        if let error {
            XCTAssertEqual(error.reason, reason, "error.data.reason of \(method) \(params ?? .null): \(error)",
                           file: file, line: line)
        }
        return error
    }

    /// Assert an error has the given code and reason.
    func assertReason(_ error: AgentdError, code: Int64, reason: String, _ context: String,
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(error.code, code, "\(context): \(error)", file: file, line: line)
        XCTAssertEqual(error.reason, reason, "\(context): \(error)", file: file, line: line)
    }

    // MARK: Protocol helpers over AgentdConnection

    /// A node definition with max_attempts.
    func nodeSpec(_ id: String, _ dependencies: [String] = [], maxAttempts: Int) -> JSONValue {
        ["id": .string(id), "dependencies": .array(dependencies.map { .string($0) }), "max_attempts": .int(Int64(maxAttempts))]
    }

    /// The node object with `id` in TaskStatus.
    func node(_ status: JSONValue, _ id: String) -> JSONValue? {
        status["nodes"]?.arrayValue?.first(where: { $0["id"]?.stringValue == id })
    }

    /// AcquireResourceLock; returns the lock object (or JSON null when held).
    func lock(_ connection: AgentdConnection, _ key: String, owner: String = "tester", ttl: Int? = nil,
              extra: JSONValue = [:]) throws -> JSONValue {
        var params = JSONObject([("resource_key", .string(key)), ("owner", .string(owner))])
        if let ttl { params["ttl_secs"] = .int(Int64(ttl)) }
        for (k, v) in extra.objectValue ?? JSONObject() { params[k] = v }
        return try connection.call("AcquireResourceLock", .object(params))
    }

    func release(_ connection: AgentdConnection, _ lock: JSONValue, file: StaticString = #filePath, line: UInt = #line) throws {
        let answer = try connection.call("ReleaseResourceLock", ["resource_key": .string(lock["resource_key"]?.stringValue ?? ""),
                                                                 "lease_id": .string(lock["lease_id"]?.stringValue ?? "")])
        XCTAssertEqual(answer["ok"]?.boolValue, true, "release: \(answer)", file: file, line: line)
    }

    /// ListResourceLocks (optionally with a prefix): the lock objects.
    func listLocks(_ connection: AgentdConnection, prefix: String? = nil) throws -> [JSONValue] {
        let params: JSONValue = prefix.map { ["prefix": .string($0)] } ?? [:]
        let result = try connection.call("ListResourceLocks", params)
        guard let locks = result["locks"]?.arrayValue else { throw ITError("ListResourceLocks has no locks array: \(result)") }
        return locks
    }

    /// The listed lock on `key`, if any.
    func listedLock(_ connection: AgentdConnection, _ key: String) throws -> JSONValue? {
        try listLocks(connection).first(where: { $0["resource_key"]?.stringValue == key })
    }

    /// ReadEvents; returns the whole result {events, next_seq}.
    func readEvents(_ connection: AgentdConnection, _ taskID: String, nodeID: String? = nil, afterSeq: Int? = nil,
                    limit: Int? = nil) throws -> JSONValue {
        var params = JSONObject([("task_id", .string(taskID))])
        if let nodeID { params["node_id"] = .string(nodeID) }
        if let afterSeq { params["after_seq"] = .int(Int64(afterSeq)) }
        if let limit { params["limit"] = .int(Int64(limit)) }
        let result = try connection.call("ReadEvents", .object(params))
        guard result["events"]?.arrayValue != nil else { throw ITError("ReadEvents has no events array: \(result)") }
        return result
    }

    /// Every event of a task (paging through ReadEvents).
    func allEvents(_ connection: AgentdConnection, _ taskID: String) throws -> [JSONValue] {
        var events: [JSONValue] = []
        var after = 0
        for _ in 0..<1000 {
            let page = try readEvents(connection, taskID, afterSeq: after, limit: 1000)
            let batch = page["events"]?.arrayValue ?? []
            if batch.isEmpty { return events }
            events += batch
            guard let next = page["next_seq"]?.int, next > after else {
                throw ITError("ReadEvents next_seq did not advance past \(after): \(page)")
            }
            after = next
        }
        throw ITError("ReadEvents paging did not end")
    }

    /// The `counts` object of TaskStatus as a dictionary.
    func counts(_ status: JSONValue) -> [String: Int] {
        var out: [String: Int] = [:]
        for (key, value) in status["counts"]?.objectValue ?? JSONObject() { out[key] = value.int ?? -1 }
        return out
    }
}
