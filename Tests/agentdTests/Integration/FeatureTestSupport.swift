// Integration test support: requests sent without waiting for their answer
// (parked requests), the "still parked" check, error reasons, and small helpers for the new
// methods. Builds on IntegrationTestCase and ITLineClient.

import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

class FeatureTestCase: IntegrationTestCase {
    /// Helper processes (clients that are killed on purpose); killed in tearDown.
    private var helperChildren: [ITChild] = []

    override func tearDown() {
        for child in helperChildren { child.killAndReap() }
        helperChildren.removeAll()
        super.tearDown()
    }

    func adopt(_ child: ITChild) { helperChildren.append(child) }

    // MARK: Requests in flight

    /// Send a request without reading its answer; returns its id.
    @discardableResult
    func post(_ client: ITLineClient, _ method: String, _ params: Any? = nil) throws -> Int {
        let id = client.takeID()
        try client.sendLine(ITLineClient.requestLine(id: id, method: method, params: params))
        return id
    }

    /// Read the next answer on `client` (bounded) and check it answers request `id`.
    func envelope(_ client: ITLineClient, id: Int, timeout: TimeInterval = 10) throws -> ITJSON {
        let response = try client.readResponse(timeout: timeout)
        guard response["id"].int == id else {
            throw ITError("expected the answer to request \(id), got \(response)")
        }
        return response
    }

    /// Read the next answer on `client`, which must be a success for request `id`; returns
    /// its result (possibly JSON null, but the "result" key must be present).
    func answer(_ client: ITLineClient, id: Int, timeout: TimeInterval = 10) throws -> ITJSON {
        let response = try envelope(client, id: id, timeout: timeout)
        if response["error"].exists { throw ITError("request \(id) answered error \(response["error"])") }
        guard response["result"].exists else { throw ITError("answer to request \(id) has no \"result\" key: \(response)") }
        return response["result"]
    }

    /// Assert that nothing has arrived on `client` (a parked request is still parked).
    func assertSilent(_ client: ITLineClient, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        switch client.readLineOutcome(timeout: 0.02) {
        case .timeout: break
        case let other: XCTFail("\(what): expected no answer yet, got \(other)", file: file, line: line)
        }
    }

    /// Make sure the request just sent on `parked` has been taken in and parked: a Health
    /// round trip on `probe` is answered (other connections are not held up) and `parked`
    /// has still said nothing. The daemon reads ready connections each loop turn, so bytes
    /// that were in `parked`'s socket before the Health was sent have been handled by then.
    func confirmParked(_ parked: ITLineClient, probe: ITLineClient, _ what: String,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let health = try probe.call("Health")
        XCTAssertEqual(health["status"].string, "ok", file: file, line: line)
        assertSilent(parked, what, file: file, line: line)
    }

    // MARK: Errors with reasons

    /// Send a request and assert an error answer with `code`, `error.data.reason == reason`
    /// and (if given) the exact message or a message prefix.
    @discardableResult
    func expectReason(_ client: ITLineClient, _ method: String, _ params: Any?, code: Int = -32000,
                      reason: String, message: String? = nil, prefix: String? = nil,
                      file: StaticString = #filePath, line: UInt = #line) throws -> ITJSON {
        let response = try expectError(client, method, params, code: code, message: message, prefix: prefix,
                                       file: file, line: line)
        XCTAssertEqual(response["error"]["data"]["reason"].string, reason,
                       "error.data.reason of \(method) \(itJSONText(params ?? NSNull())): \(response)", file: file, line: line)
        return response
    }

    /// Assert a raw envelope is an error with the given code and reason.
    func assertReason(_ response: ITJSON, code: Int, reason: String, _ context: String,
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(response["error"]["code"].int, code, "\(context): \(response)", file: file, line: line)
        XCTAssertEqual(response["error"]["data"]["reason"].string, reason, "\(context): \(response)", file: file, line: line)
        XCTAssertFalse(response["result"].exists, "\(context): \(response)", file: file, line: line)
    }

    // MARK: Protocol helpers

    /// A node definition with extra keys (e.g. max_attempts).
    func nodeDef(_ id: String, _ dependencies: [String] = [], maxAttempts: Int) -> [String: Any] {
        ["id": id, "dependencies": dependencies, "max_attempts": maxAttempts]
    }

    /// The node object with `id` in TaskStatus.
    func node(_ status: ITJSON, _ id: String) -> ITJSON {
        ITJSON(status["nodes"].array?.first(where: { $0["id"].string == id })?.value)
    }

    /// AcquireResourceLock; returns the lock object (or JSON null when held).
    func lock(_ client: ITLineClient, _ key: String, owner: String = "tester", ttl: Int? = nil,
              extra: [String: Any] = [:]) throws -> ITJSON {
        var params: [String: Any] = ["resource_key": key, "owner": owner]
        if let ttl { params["ttl_secs"] = ttl }
        for (k, v) in extra { params[k] = v }
        return try client.call("AcquireResourceLock", params)
    }

    func release(_ client: ITLineClient, _ lock: ITJSON) throws {
        let answer = try client.call("ReleaseResourceLock", ["resource_key": lock["resource_key"].string ?? "",
                                                            "lease_id": lock["lease_id"].string ?? ""])
        XCTAssertEqual(answer["ok"].bool, true, "release: \(answer)")
    }

    /// ListResourceLocks (optionally with a prefix): the lock objects.
    func listLocks(_ client: ITLineClient, prefix: String? = nil) throws -> [ITJSON] {
        let params: [String: Any] = prefix.map { ["prefix": $0] } ?? [:]
        let result = try client.call("ListResourceLocks", params)
        guard let locks = result["locks"].array else { throw ITError("ListResourceLocks has no locks array: \(result)") }
        return locks
    }

    /// The listed lock on `key`, if any.
    func listedLock(_ client: ITLineClient, _ key: String) throws -> ITJSON? {
        try listLocks(client).first(where: { $0["resource_key"].string == key })
    }

    /// ReadEvents; returns the whole result {events, next_seq}.
    func readEvents(_ client: ITLineClient, _ taskID: String, nodeID: String? = nil, afterSeq: Int? = nil,
                    limit: Int? = nil) throws -> ITJSON {
        var params: [String: Any] = ["task_id": taskID]
        if let nodeID { params["node_id"] = nodeID }
        if let afterSeq { params["after_seq"] = afterSeq }
        if let limit { params["limit"] = limit }
        let result = try client.call("ReadEvents", params)
        guard result["events"].array != nil else { throw ITError("ReadEvents has no events array: \(result)") }
        return result
    }

    /// Every event of a task (paging through ReadEvents).
    func allEvents(_ client: ITLineClient, _ taskID: String) throws -> [ITJSON] {
        var events: [ITJSON] = []
        var after = 0
        for _ in 0..<1000 {
            let page = try readEvents(client, taskID, afterSeq: after, limit: 1000)
            let batch = page["events"].array ?? []
            if batch.isEmpty { return events }
            events += batch
            guard let next = page["next_seq"].int, next > after else {
                throw ITError("ReadEvents next_seq did not advance past \(after): \(page)")
            }
            after = next
        }
        throw ITError("ReadEvents paging did not end")
    }

    /// The `counts` object of TaskStatus as a dictionary.
    func counts(_ status: ITJSON) -> [String: Int] {
        var out: [String: Int] = [:]
        for key in status["counts"].keys { out[key] = status["counts"][key].int ?? -1 }
        return out
    }

    /// Spawn `python3 -c script args...` with output into the test directory.
    func spawnPython(_ script: String, _ arguments: [String], directory: String) throws -> ITChild {
        guard let python = itWhich("python3") else { throw ITError("python3 not found") }
        let tag = UUID().uuidString.prefix(8)
        let child = try ITChild.spawn(python, ["-c", script] + arguments,
                                      environment: ProcessInfo.processInfo.environment,
                                      stdoutPath: "\(directory)/py-\(tag).out", stderrPath: "\(directory)/py-\(tag).err")
        adopt(child)
        return child
    }
}

extension FeatureTestCase {
    /// One request on a connection used for nothing else, its answer line read straight from
    /// the socket (fast for multi-megabyte answers). Returns the raw answer line.
    func bigCall(_ daemon: ITDaemon, _ method: String, _ params: Any?, timeout: TimeInterval = 20) throws -> [UInt8] {
        let client = try connect(daemon)
        try client.sendLine(ITLineClient.requestLine(id: 1, method: method, params: params))
        var buffer = [UInt8]()
        var scanned = 0
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            if let newline = buffer[scanned...].withUnsafeBufferPointer({ raw -> Int? in
                guard let base = raw.baseAddress, let hit = memchr(base, 0x0A, raw.count) else { return nil }
                return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            }) {
                return Array(buffer[..<(scanned + newline)])
            }
            scanned = buffer.count
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { throw ITError("\(method): no complete answer within \(timeout) s (\(buffer.count) bytes)") }
            var pfd = pollfd(fd: client.fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(remaining * 1000) + 1)
            if ready < 0 && errno != EINTR { throw ITError("poll: \(errno)") }
            if ready <= 0 { continue }
            let n = chunk.withUnsafeMutableBytes { recv(client.fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if n <= 0 { throw ITError("\(method): connection ended after \(buffer.count) bytes") }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }
}
