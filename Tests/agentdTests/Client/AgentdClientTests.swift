// AgentdClient against the real daemon: calls, typed errors, pipelining from threads,
// connection-bound locks, and the Repeater that keeps a lock alive.

import XCTest
import Foundation
import AgentdClient

final class AgentdClientTests: IntegrationTestCase {
    private func open(_ daemon: ITDaemon) throws -> AgentdConnection {
        let connection = try AgentdConnection(socketPath: daemon.socketPath)
        addTeardownBlock { connection.close() }
        return connection
    }

    func testCallReturnsTheResultAndItsExactText() throws {
        let connection = try open(try makeDaemon())
        let health = try connection.callReply("Health")
        XCTAssertEqual(health.result["status"], "ok")
        XCTAssertTrue(health.resultText.hasPrefix("{\"status\":\"ok\""), health.resultText)
        let task = try connection.call("RegisterTask", ["goal": "g", "initial_nodes": [["payload_schema": ["k": 1]]]])
        let taskId = try XCTUnwrap(task["task_id"]?.stringValue)
        let status = try connection.call("TaskStatus", ["task_id": .string(taskId)])
        XCTAssertEqual(status["task"]?["goal"], "g")
        XCTAssertEqual(status["nodes"]?[0]?["payload_schema"], ["k": 1])
    }

    func testDaemonErrorsCarryCodeMessageAndReason() throws {
        let connection = try open(try makeDaemon())
        XCTAssertThrowsError(try connection.call("TaskStatus", ["task_id": "00000000-0000-4000-8000-000000000000"])) {
            let error = $0 as? AgentdError
            XCTAssertEqual(error?.code, -32000)
            XCTAssertEqual(error?.reason, "TASK_NOT_FOUND")
            XCTAssertEqual(error?.message, "task not found: 00000000-0000-4000-8000-000000000000")
        }
        XCTAssertThrowsError(try connection.call("NoSuchMethod")) {
            XCTAssertEqual(($0 as? AgentdError)?.reason, "UNKNOWN_METHOD")
        }
        // The connection is still usable after errors.
        XCTAssertEqual(try connection.call("Health")["status"], "ok")
    }

    func testAnUnreachableSocketIsNamed() throws {
        let path = try makeTempDir() + "/nothing.sock"
        XCTAssertThrowsError(try AgentdConnection(socketPath: path)) {
            guard case .unreachable(let endpoint, _)? = $0 as? ConnectionError else {
                return XCTFail("expected unreachable, got \($0)")
            }
            XCTAssertEqual(endpoint, path)
            XCTAssertTrue("\($0)".contains(path))
        }
    }

    func testThreadsShareOneConnectionAndEachGetsItsOwnAnswers() throws {
        let connection = try open(try makeDaemon())
        let threads = 8, perThread = 50
        let group = DispatchGroup()
        let lock = NSLock()
        var mismatches: [String] = []
        for t in 0..<threads {
            DispatchQueue.global().async(group: group) {
                for i in 0..<perThread {
                    let key = "k-\(t)-\(i)"
                    do {
                        let lockObject = try connection.call("AcquireResourceLock", ["resource_key": .string(key), "owner": "o"])
                        if lockObject["resource_key"]?.stringValue != key {
                            lock.lock(); mismatches.append(key); lock.unlock()
                        }
                    } catch {
                        lock.lock(); mismatches.append("\(key): \(error)"); lock.unlock()
                    }
                }
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(mismatches, [])
        let locks = try connection.call("ListResourceLocks")["locks"]?.arrayValue
        XCTAssertEqual(locks?.count, threads * perThread)
    }

    func testARequestBehindAParkedOneTakesEffectAtOnce() throws {
        let daemon = try makeDaemon()
        let holder = try open(daemon)
        let first = "11111111-1111-4111-8111-111111111111"
        let task = try holder.call("RegisterTask", ["goal": "g", "initial_nodes": [
            ["id": .string(first)], ["dependencies": [.string(first)]]]])
        let taskId = try XCTUnwrap(task["task_id"])
        let lease = try holder.call("AcquireNextNode", ["task_id": taskId, "lease_owner": "a"])

        // A parked acquire on `waiter` holds back the answers behind it, not their effect: the
        // CompleteNode sent behind it makes the second node runnable, which answers the acquire.
        let waiter = try open(daemon)
        let parked = expectation(description: "parked acquire answered with the second node")
        waiter.send("AcquireNextNode", ["task_id": taskId, "wait_ms": 30_000]) { outcome in
            if case .success(let reply) = outcome, reply.result["node_id"] != nil,
               reply.result["node_id"]?.stringValue != first { parked.fulfill() }
        }
        let completed = expectation(description: "complete answered")
        waiter.send("CompleteNode", ["task_id": taskId, "node_id": lease["node_id"]!,
                                     "lease_id": lease["lease_id"]!, "result_payload": ["ok": true]]) { outcome in
            if case .success = outcome { completed.fulfill() }
        }
        wait(for: [parked, completed], timeout: 20, enforceOrder: true)
    }

    func testClosingFreesWhatTheConnectionHolds() throws {
        let daemon = try makeDaemon()
        let observer = try open(daemon)
        let holder = try AgentdConnection(socketPath: daemon.socketPath)
        let granted = try holder.call("AcquireResourceLock", ["resource_key": "file:a", "ttl_secs": 300,
                                                              "release_on_disconnect": true])
        XCTAssertNotNil(granted["fencing_token"]?.intValue)
        let closed = expectation(description: "onClose")
        holder.onClose { _ in closed.fulfill() }
        holder.close()
        wait(for: [closed], timeout: 10)
        try waitUntil("the lock is released") {
            try observer.call("ListResourceLocks")["locks"]?.arrayValue?.isEmpty == true
        }
        XCTAssertThrowsError(try holder.call("Health")) { XCTAssertTrue($0 is ConnectionError) }
    }

    func testClosingAConnectionThatHasEndedLeavesOtherConnectionsAlone() throws {
        let daemon = try makeDaemon()
        let ended = try AgentdConnection(socketPath: daemon.socketPath)
        let gone = expectation(description: "the connection ended")
        ended.onClose { _ in gone.fulfill() }
        // A line past the daemon's limit: answered -32001, and the connection is closed.
        _ = try? ended.call("Health", ["padding": .string(String(repeating: "x", count: 1_100_000))])
        wait(for: [gone], timeout: 10)
        // The reader thread closes its descriptor just after the close handlers are started.
        Thread.sleep(forTimeInterval: 0.3)
        // New connections take the lowest free descriptors, the ended one's among them.
        let others = try (0..<4).map { _ in try open(daemon) }
        ended.close()
        for other in others {
            XCTAssertEqual(try other.call("Health", timeout: 10)["status"], "ok")
        }
    }

    func testAWriterThatPipelinesFasterThanItReadsDoesNotStallTheReader() throws {
        // Big requests keep the writer blocked in send(); big answers fill the daemon's output
        // past its high-water mark, and then the daemon reads no more until this side reads.
        let connection = try open(try makeDaemon())
        let answerSize = try connection.callReply("DescribeInterface").resultText.utf8.count
        let count = max(64, (10 << 20) / answerSize)
        let padding = JSONValue.string(String(repeating: "p", count: 16 * 1024))
        let lock = NSLock()
        var answered = 0
        let all = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            for _ in 0..<count {
                connection.send("DescribeInterface", ["padding": padding]) { _ in
                    lock.lock(); answered += 1; let done = answered == count; lock.unlock()
                    if done { all.signal() }
                }
            }
        }
        XCTAssertEqual(all.wait(timeout: .now() + 60), .success, "answered \(lock.withLock { answered }) of \(count)")
    }

    func testPendingCallsFailWhenTheDaemonGoesAway() throws {
        let daemon = try makeDaemon()
        let connection = try open(daemon)
        let task = try connection.call("RegisterTask", ["goal": "g"])
        let failed = expectation(description: "parked call fails")
        connection.send("AcquireNextNode", ["task_id": task["task_id"]!, "wait_ms": 60_000]) { outcome in
            if case .success(let reply) = outcome, reply.result.isNull { failed.fulfill() }   // answered at shutdown
            if case .failure(let error) = outcome, error is ConnectionError { failed.fulfill() }
        }
        _ = try daemon.stop()
        wait(for: [failed], timeout: 20)
    }

    func testRepeaterKeepsALockPastItsTTL() throws {
        let daemon = try makeDaemon()
        let connection = try open(daemon)
        let lock = try connection.call("AcquireResourceLock", ["resource_key": "k", "ttl_secs": 1])
        let leaseId = try XCTUnwrap(lock["lease_id"])
        let beats = NSLock()
        var count = 0
        let repeater = Repeater(every: 0.3) {
            let ok = (try? connection.call("HeartbeatResourceLock", ["resource_key": "k", "lease_id": leaseId, "ttl_secs": 1])) != nil
            beats.lock(); count += 1; beats.unlock()
            return ok
        }
        defer { repeater.stop() }
        // Past two TTLs, the lock is still held by its first lease.
        try waitUntil("eight heartbeats") { beats.lock(); defer { beats.unlock() }; return count >= 8 }
        let second = try open(daemon)
        XCTAssertEqual(try second.call("AcquireResourceLock", ["resource_key": "k"]), .null)
        XCTAssertEqual(try second.call("ListResourceLocks")["locks"]?[0]?["lease_id"], leaseId)
    }

    func testEnvironmentFindsTheSocketAsTheDaemonDoes() throws {
        let home = try makeTempDir()
        try "# comment\nexport AGENTD_SOCKET_PATH='\(home)/from-file.sock'\n".write(
            toFile: home + "/.env", atomically: true, encoding: .utf8)
        XCTAssertEqual(AgentdEnvironment(processEnvironment: ["HOME": "/h"]).socketPath, "/h/.agentd/agentd.sock")
        XCTAssertEqual(AgentdEnvironment(processEnvironment: ["AGENTD_HOME": home]).socketPath, home + "/from-file.sock")
        XCTAssertEqual(AgentdEnvironment(processEnvironment: ["AGENTD_HOME": home, "AGENTD_SOCKET_PATH": "~/x.sock",
                                                              "HOME": "/h"]).socketPath, "/h/x.sock")
    }

    func testJSONValuesRoundTripInOrder() throws {
        let text = #"{"b":1,"a":[true,null,-2.5,"\u00e9\n"],"c":{"z":{},"y":[]}}"#
        let value = try JSONValue.parse(text)
        XCTAssertEqual(value.compactText, #"{"b":1,"a":[true,null,-2.5,"é\n"],"c":{"z":{},"y":[]}}"#)
        XCTAssertEqual(value["c"]?.objectValue?.keys, ["z", "y"])
        XCTAssertEqual(try JSONValue.parse(value.prettyText), value)
        XCTAssertThrowsError(try JSONValue.parse("{\"a\":"))
    }
}
