// The tool layer against a scripted daemon: what each tool sends, in which order, and what it
// makes of the answers (the graph task_create sends, lock order and rollback, capped waits,
// the session's own leases, heartbeats, a connection that ends), and the small helpers.

import XCTest
import Foundation
import AgentdClient
@testable import AgentdMCP

/// A daemon connection that answers from a script and records every request.
final class ScriptedLink: DaemonLink, @unchecked Sendable {
    private let lock = NSLock()
    private var sent: [(method: String, params: JSONValue)] = []
    private var closeHandlers: [@Sendable (ConnectionError) -> Void] = []
    private(set) var closed = false
    /// As AgentdConnection does once it has ended: onClose runs its handler at once.
    var endedAlready = false
    var answer: (String, JSONValue) -> Result<JSONValue, Error>

    init(_ answer: @escaping (String, JSONValue) -> Result<JSONValue, Error>) {
        self.answer = answer
    }

    var requests: [(method: String, params: JSONValue)] { lock.lock(); defer { lock.unlock() }; return sent }
    var methods: [String] { requests.map(\.method) }

    func send(_ method: String, _ params: JSONValue, completion: @escaping @Sendable (Result<JSONValue, Error>) -> Void) {
        lock.lock()
        sent.append((method, params))
        let outcome = answer(method, params)
        lock.unlock()
        completion(outcome)
    }

    func onClose(_ handler: @escaping @Sendable (ConnectionError) -> Void) {
        lock.lock()
        if endedAlready {
            lock.unlock()
            return handler(.closed("the daemon closed the connection"))
        }
        closeHandlers.append(handler)
        lock.unlock()
    }

    func close() {
        lock.lock(); closed = true; lock.unlock()
    }

    func dropFromUnder() {
        lock.lock(); let handlers = closeHandlers; lock.unlock()
        handlers.forEach { $0(.closed("the daemon closed the connection")) }
    }
}

extension JSONValue {
    /// A member, or null: lets assertions compare with literals.
    func at(_ key: String) -> JSONValue { self[key] ?? .null }
}

extension AgentdTools {
    func call(_ name: String, _ arguments: JSONValue) async -> ToolOutcome {
        await call(name, arguments.objectValue ?? JSONObject())
    }
}

final class AgentdToolsTests: XCTestCase {
    private func tools(_ link: ScriptedLink) -> AgentdTools {
        let session = AgentSession(agent: "tester", endpoint: "/tmp/agentd.sock") { link }
        addTeardownBlock { session.close() }
        return AgentdTools(session: session, now: { 1_000 })
    }

    private func lockObject(_ params: JSONValue, token: Int64) -> JSONValue {
        ["resource_key": params["resource_key"]!, "lease_id": .string("lease-\(params["resource_key"]!.stringValue!)"),
         "owner": params["owner"]!, "fencing_token": .int(token), "lease_expires_at": 1_300]
    }

    func testLockTakesKeysInSortedOrderAndGivesThemBackOnAConflict() async {
        let link = ScriptedLink { method, params in
            switch method {
            case "AcquireResourceLock":
                return .success(params["resource_key"] == "file:b" ? .null : self.lockObject(params, token: 7))
            case "ListResourceLocks":
                return .success(["locks": [["resource_key": "file:b", "lease_id": "theirs", "owner": "other",
                                            "acquired_at": 900, "lease_expires_at": 1_200, "metadata": ["reason": "refactor"]]]])
            default:
                return .success(["ok": true])
            }
        }
        let tools = tools(link)
        let outcome = await tools.call("lock", ["keys": ["file:c", "file:b", "file:a"], "ttl_s": 60])
        XCTAssertFalse(outcome.isError)
        XCTAssertEqual(link.methods, ["AcquireResourceLock", "AcquireResourceLock", "ReleaseResourceLock", "ListResourceLocks"])
        XCTAssertEqual(link.requests.prefix(2).map { $0.params["resource_key"] }, ["file:a", "file:b"])
        XCTAssertEqual(link.requests[0].params, [
            "resource_key": "file:a", "owner": "tester", "ttl_secs": 60, "metadata": [:], "release_on_disconnect": true,
        ])
        XCTAssertEqual(link.requests[2].params, ["resource_key": "file:a", "lease_id": "lease-file:a"])
        XCTAssertEqual(outcome.structured.at("granted"), [])
        XCTAssertEqual(outcome.structured.at("conflicts"), [
            ["key": "file:b", "owner": "other", "since": 900, "expires_at": 1_200, "reason": "refactor"],
        ])
        let hint = outcome.structured["hint"]?.stringValue ?? ""
        XCTAssertTrue(hint.contains("file:b is held by other until") && hint.contains("(in 200 s") && hint.contains("wait_s"), hint)
        XCTAssertEqual(tools.session.heldLockKeys(), [])
    }

    func testLockWaitsWithWhatIsLeftOfWaitS() async {
        let link = ScriptedLink { method, params in
            .success(method == "AcquireResourceLock" ? self.lockObject(params, token: 1) : ["ok": true])
        }
        let tools = tools(link)
        let outcome = await tools.call("lock", ["keys": ["k"], "wait_s": 600, "reason": "why"])
        XCTAssertFalse(outcome.isError)
        let params = link.requests[0].params
        XCTAssertEqual(params["metadata"], ["reason": "why"])
        let waitMs = params["wait_ms"]?.intValue ?? 0
        XCTAssertTrue(waitMs > 49_000 && waitMs <= 50_000, "\(waitMs)")
        XCTAssertEqual(outcome.structured.at("granted"), [["key": "k", "fencing_token": 1, "expires_at": 1_300]])
        // A key the session holds is granted again without asking the daemon.
        let again = await tools.call("lock", ["keys": ["k"]])
        XCTAssertEqual(link.methods, ["AcquireResourceLock"])
        XCTAssertEqual(again.structured.at("granted")[0]?.at("already_held"), true)
    }

    func testHeartbeatsRenewHeldLocksAndARefusalIsReportedOnce() async throws {
        let refuse = NSLock()
        var refusing = false
        let beat = expectation(description: "a heartbeat")
        beat.assertForOverFulfill = false
        let link = ScriptedLink { method, params in
            switch method {
            case "AcquireResourceLock": return .success(self.lockObject(params, token: 3))
            case "HeartbeatResourceLock":
                beat.fulfill()
                return refuse.withLock({ refusing }) ? .failure(AgentdError(code: -32000, message: "invalid state: resource lock k requires the current active lease",
                                                       reason: "LOCK_NOT_HELD")) : .success(["ok": true])
            default: return .success(["locks": []])
            }
        }
        let tools = tools(link)
        _ = await tools.call("lock", ["keys": ["k"], "ttl_s": 1])
        await fulfillment(of: [beat], timeout: 10)
        let heartbeat = try XCTUnwrap(link.requests.first { $0.method == "HeartbeatResourceLock" })
        XCTAssertEqual(heartbeat.params, ["resource_key": "k", "lease_id": "lease-k", "ttl_secs": 1])

        refuse.withLock { refusing = true }
        let deadline = Date().addingTimeInterval(10)
        while tools.session.heldLock("k") != nil && Date() < deadline { try await Task.sleep(nanoseconds: 20_000_000) }
        XCTAssertNil(tools.session.heldLock("k"))
        let next = await tools.call("locks", [:])
        let notices = next.structured["notices"]?.arrayValue ?? []
        XCTAssertEqual(notices.count, 1)
        XCTAssertTrue(notices.first?.stringValue?.contains("The lock on k was lost") == true)
        XCTAssertTrue(next.summary.hasPrefix("Note: The lock on k was lost"))
        let later = await tools.call("locks", [:])
        XCTAssertNil(later.structured["notices"])
    }

    func testWorkNextAsksWithTheSessionsNameACappedWaitAndReleaseOnDisconnect() async {
        let link = ScriptedLink { method, _ in
            switch method {
            case "Health": return .success(["status": "ok", "running_timeout_secs": 120])
            case "AcquireNextNode": return .success(.null)
            case "TaskStatus":
                return .success(["task": ["id": "t", "goal": "g", "status": "ACTIVE"], "counts": ["RUNNING": 1, "PENDING": 1],
                                 "nodes": []])
            default: return .failure(AgentdError(code: -32601, message: "unknown method", reason: "UNKNOWN_METHOD"))
            }
        }
        let tools = tools(link)
        let outcome = await tools.call("work_next", ["task_id": "t", "wait_s": 90])
        XCTAssertEqual(link.methods, ["Health", "AcquireNextNode", "TaskStatus"])
        XCTAssertEqual(link.requests[1].params, [
            "task_id": "t", "lease_owner": "tester", "lease_ttl_secs": 120, "release_on_disconnect": true, "wait_ms": 50_000,
        ])
        XCTAssertEqual(outcome.structured["none"], true)
        XCTAssertEqual(outcome.structured["task_status"]?["status"], "ACTIVE")
        XCTAssertTrue(outcome.structured["hint"]?.stringValue?.contains("call work_next again") == true)
    }

    func testWorkNextGivesTheNodeWithNamedDependenciesAndFinishingUsesItsLease() async {
        let link = ScriptedLink { method, params in
            switch method {
            case "AcquireNextNode":
                return .success(["task_id": "t", "node_id": "n2", "lease_id": "L", "lease_owner": "tester", "lease_expires_at": 1_120,
                                 "context": [
                                     "task": ["id": "t", "goal": "g", "context": ["repo": "r"]],
                                     "node": ["id": "n2", "name": "code", "payload_schema": ["do": "it"], "attempts": 1],
                                     "completed_dependencies": [["node_id": "n1", "result_payload": ["ok": true]]],
                                     "event_journal": [["node_id": "n1", "action_type": "COMPLETE_NODE", "payload": ["result": ["ok": true]],
                                                        "timestamp": "2026-01-01T00:00:00.000Z"]],
                                 ]])
            case "TaskStatus":
                return .success(["task": ["id": "t", "status": "ACTIVE"], "counts": [:],
                                 "nodes": [["id": "n1", "name": "design", "status": "COMPLETED"]]])
            case "CompleteNode": return .success(["event_id": "e1"])
            default: return .success(["ok": true])
            }
        }
        let tools = tools(link)
        let work = await tools.call("work_next", ["task_id": "t", "wait_s": 0, "lease_ttl_s": 90])
        XCTAssertFalse(work.isError, work.text)
        XCTAssertNil(link.requests[0].params["wait_ms"])
        XCTAssertEqual(work.structured["name"], "code")
        XCTAssertEqual(work.structured.at("payload"), ["do": "it"])
        XCTAssertEqual(work.structured.at("dependencies"), [["name": "design", "node_id": "n1", "result": ["ok": true]]])
        XCTAssertEqual(work.structured.at("recent_events")[0]?.at("node"), "design")
        XCTAssertEqual(tools.session.heldLease(.init(taskId: "t", nodeId: "n2"))?.leaseId, "L")

        let done = await tools.call("work_done", ["task_id": "t", "node_id": "n2", "result": ["summary": "s"]])
        XCTAssertEqual(done.structured, ["event_id": "e1"] as JSONValue)
        XCTAssertEqual(link.requests.last?.params, ["task_id": "t", "node_id": "n2", "lease_id": "L", "result_payload": ["summary": "s"]])
        XCTAssertNil(tools.session.heldLease(.init(taskId: "t", nodeId: "n2")))
    }

    func testFinishingANodeThisSessionDoesNotHoldSendsNothingAndSaysWhy() async {
        let link = ScriptedLink { method, _ in
            .success(method == "TaskStatus"
                     ? ["task": ["id": "t"], "counts": [:], "nodes": [["id": "n", "name": "x", "status": "RUNNING", "lease_owner": "someone"]]]
                     : ["event_id": "e"])
        }
        let tools = tools(link)
        let outcome = await tools.call("work_fail", ["task_id": "t", "node_id": "n", "error": "boom"])
        XCTAssertTrue(outcome.isError)
        XCTAssertEqual(link.methods, ["TaskStatus"])
        XCTAssertEqual(outcome.structured["reason"], "NO_LEASE")
        XCTAssertTrue(outcome.structured["error"]?.stringValue?.contains("another agent (someone) holds it now") == true)
        XCTAssertTrue(outcome.text.hasPrefix("Error (NO_LEASE): "))
    }

    func testTaskCreateRequiresNamesAndSendsTheGraphWithIds() async throws {
        let link = ScriptedLink { method, _ in
            method == "RegisterTask" ? .success(["task_id": "t-1"]) : .failure(AgentdError(code: -32601, message: method, reason: nil))
        }
        let tools = tools(link)
        let unnamed = await tools.call("task_create", ["goal": "g", "nodes": [["name": "a"], ["after": ["a"]]]])
        XCTAssertTrue(unnamed.isError)
        XCTAssertEqual(unnamed.structured["reason"], "INVALID_DAG")
        XCTAssertEqual(unnamed.structured["error"], "nodes[1] needs a `name` (a non-empty string)")
        XCTAssertEqual(link.methods, [], "a refused graph sends nothing")

        let created = await tools.call("task_create", ["goal": "g", "nodes": [["name": "a"], ["name": "b", "after": "a"]]])
        XCTAssertFalse(created.isError, "\(created.structured)")
        XCTAssertEqual(link.methods, ["RegisterTask"])
        let params = link.requests[0].params
        XCTAssertEqual(params["goal"], "g")
        XCTAssertEqual(params["context"], [:], "task_create always sends a context")
        let ids = try XCTUnwrap(created.structured["nodes"])
        let a = try XCTUnwrap(ids["a"]?.stringValue), b = try XCTUnwrap(ids["b"]?.stringValue)
        XCTAssertEqual(params["initial_nodes"], [
            ["id": .string(a), "name": "a", "dependencies": [], "payload_schema": [:]],
            ["id": .string(b), "name": "b", "dependencies": [.string(a)], "payload_schema": [:]],
        ])
        XCTAssertEqual(created.structured["task_id"], "t-1")
    }

    func testLockKeysAreUniqueAndInByteOrder() {
        XCTAssertEqual(LockPlan.order(["file:b", "file:a", "file:b", "File:z", "file:a/x"]),
                       ["File:z", "file:a", "file:a/x", "file:b"])
    }

    func testWaitsAreCappedAtFiftySeconds() {
        XCTAssertEqual(AgentdTools.waitMilliseconds(20), 20_000)
        XCTAssertEqual(AgentdTools.waitMilliseconds(0.25), 250)
        XCTAssertEqual(AgentdTools.waitMilliseconds(600), 50_000)
        XCTAssertEqual(AgentdTools.waitMilliseconds(-1), 0)
    }

    func testTheAgentNameComesFromTheFlagTheEnvironmentOrThePid() {
        XCTAssertEqual(MCPCommand.agentName("flag", environment: ["AGENTD_AGENT": "env"]), "flag")
        XCTAssertEqual(MCPCommand.agentName(nil, environment: ["AGENTD_AGENT": "env"]), "env")
        XCTAssertEqual(MCPCommand.agentName(nil, environment: [:]), "mcp-\(getpid())")
    }

    func testDaemonErrorsAndBadArgumentsBecomeErrorResultsWithANextStep() async {
        let link = ScriptedLink { _, _ in
            .failure(AgentdError(code: -32000, message: "task not found: t", reason: "TASK_NOT_FOUND"))
        }
        let tools = tools(link)
        let missing = await tools.call("task_status", ["task_id": "t"])
        XCTAssertEqual(missing.structured["reason"], "TASK_NOT_FOUND")
        XCTAssertEqual(missing.structured["error"], "task not found: t")
        XCTAssertTrue(missing.isError)
        XCTAssertNotNil(missing.structured["next"]?.stringValue)
        let bad = await tools.call("events", ["task_id": "t", "after_seq": -1])
        XCTAssertEqual(bad.structured["reason"], "INVALID_ARGUMENTS")
        XCTAssertTrue(bad.structured["error"]?.stringValue?.contains("`after_seq`") == true)
        let unknown = await tools.call("nope", [:])
        XCTAssertEqual(unknown.structured["reason"], "UNKNOWN_TOOL")
    }

    func testAConnectionThatEndsTakesTheSessionsHoldingsAndSaysSoOnce() async {
        let link = ScriptedLink { method, params in
            .success(method == "AcquireResourceLock" ? self.lockObject(params, token: 1) : ["locks": []])
        }
        let tools = tools(link)
        _ = await tools.call("lock", ["keys": ["a", "b"]])
        XCTAssertEqual(tools.session.heldLockKeys(), ["a", "b"])
        link.dropFromUnder()
        XCTAssertEqual(tools.session.heldLockKeys(), [])
        let next = await tools.call("locks", [:])
        XCTAssertTrue(next.structured["notices"]?[0]?.stringValue?.contains("the locks a, b that this session held were released") == true,
                      next.text)
    }

    func testAConnectionThatEndedBeforeItsCloseHandlerWasSetDoesNotHangTheSession() throws {
        // The daemon may close a new connection before the session registers its close
        // handler; the handler then runs at once, inside the session's registration.
        let link = ScriptedLink { _, _ in .success(["locks": []]) }
        link.endedAlready = true
        let session = AgentSession(agent: "a", endpoint: "e") { link }
        let tools = AgentdTools(session: session)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let finished = DispatchSemaphore(value: 0)
            Task.detached {
                _ = await tools.call("locks", [:])
                finished.signal()
            }
            finished.wait()
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success, "the tool call hung")
    }

    func testClosingTheSessionClosesTheConnection() async {
        let link = ScriptedLink { method, params in
            .success(method == "AcquireResourceLock" ? self.lockObject(params, token: 1) : ["ok": true])
        }
        let session = AgentSession(agent: "a", endpoint: "e") { link }
        let tools = AgentdTools(session: session)
        _ = await tools.call("lock", ["keys": ["a"]])
        session.close()
        XCTAssertTrue(link.closed)
        XCTAssertEqual(session.heldLockKeys(), [])
        let after = await tools.call("locks", [:])
        XCTAssertEqual(after.structured["reason"], "CONNECTION_LOST")
    }
}

final class AgentdToolsCancellationTests: XCTestCase {
    func testANodeTakenForACancelledCallIsHandedBackAtOnce() async {
        let answered = expectation(description: "acquire answered")
        let release = DispatchSemaphore(value: 0)
        let link = ScriptedLink { method, _ in
            if method == "AcquireNextNode" {
                answered.fulfill()
                release.wait()
                return .success(["task_id": "t", "node_id": "n", "lease_id": "L", "lease_expires_at": 1, "context": [:]])
            }
            return .success(["ok": true])
        }
        let session = AgentSession(agent: "a", endpoint: "e") { link }
        defer { session.close() }
        let tools = AgentdTools(session: session)
        let call = Task { await tools.call("work_next", ["task_id": "t", "wait_s": 0, "lease_ttl_s": 60]) }
        await fulfillment(of: [answered], timeout: 10)
        call.cancel()
        release.signal()
        let outcome = await call.value
        XCTAssertEqual(outcome.structured["reason"], "CANCELLED")
        XCTAssertEqual(link.methods, ["AcquireNextNode", "HeartbeatNode"])
        XCTAssertEqual(link.requests.last?.params, ["task_id": "t", "node_id": "n", "lease_id": "L", "lease_ttl_secs": 0])
        XCTAssertNil(session.heldLease(.init(taskId: "t", nodeId: "n")))
    }
}
