// Integration: clients that misbehave on purpose. None of them may take the daemon down,
// make it grow without bound, or hold up the clients that behave.

import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class HostileClientTests: IntegrationTestCase {

    /// A client pipelines requests with large answers and never reads. The daemon stops
    /// reading it once its answers pile up (bounded output buffer), so its memory stays
    /// bounded; another client is answered promptly meanwhile. When the flooder finally
    /// half-closes and reads, it gets every answer, in order, the unfinished last line included.
    func testPipelinerThatNeverReadsStaysBoundedAndOthersAreServed() throws {
        let daemon = try makeDaemon()
        let probe = try connect(daemon)
        _ = try probe.call("DescribeInterface")
        let baselineKiB = try daemon.residentKiB()

        let flooder = try connect(daemon)
        let line = Array(#"{"id":7,"method":"DescribeInterface"}"#.utf8) + [0x0A]
        var block: [UInt8] = []
        while block.count < 64 * 1024 { block += line }
        let ceiling = 512 * 1024 * 1024
        let (sent, stalled) = flood(flooder, repeating: block, upTo: ceiling)
        XCTAssertTrue(stalled, "the daemon kept reading \(sent) bytes from a client that never reads its answers")
        XCTAssertLessThan(sent, ceiling)

        let floodKiB = try daemon.residentKiB()
        XCTAssertLessThan(floodKiB - baselineKiB, 64 * 1024,
                          "daemon grew from \(baselineKiB) KiB to \(floodKiB) KiB while a client did not read (\(sent) bytes of requests sent)")

        // Others are served promptly while the flooder is stuck.
        var slowest = 0.0
        for _ in 0..<20 {
            let started = Date()
            XCTAssertEqual(try probe.call("Health", nil)["status"].string, "ok")
            slowest = max(slowest, Date().timeIntervalSince(started))
        }
        XCTAssertLessThan(slowest, 0.5, "a Health round trip took \(slowest) s beside a stuck client")
        XCTAssertLessThan(try daemon.residentKiB() - baselineKiB, 64 * 1024)

        // Half-close and read: every complete line is answered, then the unfinished one
        // (a parse error), then EOF.
        let complete = sent / line.count
        let partial = sent % line.count
        flooder.shutdownWrite()
        let answers = try flooder.readUntilEOF(timeout: 60)
        XCTAssertEqual(answers.count, complete + (partial > 0 ? 1 : 0), "answers after \(complete) complete lines and \(partial) bytes")
        let expected = Array(#"{"id":7,"result":{"protocol":"agentd-jsonl-v1""#.utf8)
        for (index, answer) in answers.prefix(complete).enumerated() where !answer.starts(with: expected) {
            XCTFail("answer \(index) is not the DescribeInterface answer: \(String(decoding: answer.prefix(200), as: UTF8.self))")
            break
        }
        if partial > 0, let last = answers.last {
            assertError(try ITJSON.parse(last), code: -32700, idCanonical: nil, "the unfinished last line")
        }
        XCTAssertEqual(try probe.call("Health")["status"].string, "ok")
    }

    /// The same behind a parked request: the answers after it are held (they may not leave
    /// before it), and those held answers count as unsent output. Past the high-water mark the
    /// daemon stops reading the connection, and its memory stays bounded.
    func testPipelinerBehindAParkedRequestStaysBounded() throws {
        let daemon = try makeDaemon()
        let probe = try connect(daemon)
        _ = try probe.call("AcquireResourceLock", ["resource_key": "k", "owner": "probe", "ttl_secs": 300,
                                                 "release_on_disconnect": true])
        let answerBytes = try probe.call("DescribeInterface").description.utf8.count
        let baselineKiB = try daemon.residentKiB()

        let flooder = try connect(daemon)
        try flooder.sendLine(#"{"id":1,"method":"AcquireResourceLock","params":{"resource_key":"k","wait_ms":60000}}"#)
        // Padded requests, so that a daemon that stops reading is seen as a full socket; 128 MiB
        // of answers held if it does not.
        let padding = String(repeating: "p", count: 16 * 1024)
        let line = Array(#"{"id":7,"method":"DescribeInterface","params":{"padding":"\#(padding)"}}"#.utf8) + [0x0A]
        let ceiling = (128 << 20) / max(answerBytes, 1) * line.count
        let (sent, stalled) = flood(flooder, repeating: line, upTo: ceiling)
        XCTAssertTrue(stalled, "the daemon kept reading \(sent) bytes from a client whose answers wait behind a parked request")
        let floodKiB = try daemon.residentKiB()
        XCTAssertLessThan(floodKiB - baselineKiB, 64 * 1024, "daemon grew from \(baselineKiB) KiB to \(floodKiB) KiB")

        // The probe leaves, the parked request gets the lock, and every answer comes out.
        flooder.shutdownWrite()
        probe.close()
        let answers = try flooder.readUntilEOF(timeout: 60)
        XCTAssertEqual(answers.count, sent / line.count + 1 + (sent % line.count > 0 ? 1 : 0))
        XCTAssertTrue(answers.first?.starts(with: Array(#"{"id":1,"result":{"resource_key":"k""#.utf8)) == true,
                      String(decoding: answers.first?.prefix(120) ?? [], as: UTF8.self))
    }

    /// Sends `block` over and over from `flooder` without reading, each send resuming where the
    /// last one stopped, until `ceiling` bytes have gone, 30 s have passed, or the socket has
    /// taken nothing for half a second. Returns the bytes sent and whether the socket was full
    /// (the daemon had stopped reading) when it ended.
    private func flood(_ flooder: ITLineClient, repeating block: [UInt8], upTo ceiling: Int) -> (sent: Int, stalled: Bool) {
        var sent = 0
        var stalledSince: Date?
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && sent < ceiling {
            let n = flooder.sendWithoutBlocking(Array(block[(sent % block.count)...]))
            if n > 0 {
                sent += n
                stalledSince = nil
            } else if let since = stalledSince {
                if Date().timeIntervalSince(since) > 0.5 { break }
                usleep(5_000)
            } else {
                stalledSince = Date()
            }
        }
        return (sent, stalledSince != nil)
    }

    /// A flooder that disconnects abruptly with answers still queued: the daemon drops them,
    /// closes its side, and keeps serving.
    func testFlooderThatResetsLeavesNothingBehind() throws {
        let daemon = try makeDaemon()
        let probe = try connect(daemon)
        _ = try probe.call("Health")
        let baselineFDs = try daemon.openDescriptors()
        for _ in 0..<5 {
            let flooder = try ITLineClient.connect(daemon.socketPath)
            var block: [UInt8] = []
            while block.count < 256 * 1024 { block += Array(#"{"method":"DescribeInterface"}"#.utf8) + [0x0A] }
            _ = flooder.sendWithoutBlocking(block)
            flooder.abort()
        }
        XCTAssertEqual(try probe.call("Health")["status"].string, "ok")
        try waitUntil("the daemon closed the reset connections") { try daemon.openDescriptors() <= baselineFDs }
    }

    /// 1,000 connections open at once, each taking a node, heartbeating and completing it.
    func testThousandConnectionsAtOnceEachDoALeaseCycle() throws {
        let connections = 1000
        let limit = itRaiseDescriptorLimit(to: 4096)
        guard limit >= connections + 100 else {
            throw XCTSkip("our descriptor limit is \(limit); the test needs \(connections + 100)")
        }
        let daemon = try makeDaemon()
        let admin = try connect(daemon)
        let nodeIDs = (0..<connections).map { _ in itUUID() }
        let taskID = try registerTask(admin, nodes: nodeIDs.map { nodeDef($0) })

        var clients: [ITLineClient] = []
        for _ in 0..<connections { clients.append(try connect(daemon)) }
        try waitUntil("the daemon holds every connection at once") { try daemon.openDescriptors() >= connections }

        // Every connection asks before any reads: the daemon serves them all together.
        for (index, client) in clients.enumerated() {
            try client.sendLine(ITLineClient.requestLine(id: index, method: "AcquireNextNode",
                                                         params: ["task_id": taskID, "lease_owner": "conn-\(index)"]))
        }
        var leases: [(node: String, lease: String)] = []
        for (index, client) in clients.enumerated() {
            let answer = try client.readResponse()
            XCTAssertEqual(answer["id"].int, index)
            guard let node = answer["result"]["node_id"].string, let lease = answer["result"]["lease_id"].string else {
                throw ITError("connection \(index) got no node: \(answer)")
            }
            leases.append((node, lease))
        }
        XCTAssertEqual(Set(leases.map(\.node)), Set(nodeIDs), "each node went to exactly one connection")

        for (index, client) in clients.enumerated() {
            try client.sendLine(ITLineClient.requestLine(id: index, method: "HeartbeatNode", params: [
                "task_id": taskID, "node_id": leases[index].node, "lease_id": leases[index].lease]))
        }
        for client in clients { XCTAssertEqual(try client.readResponse()["result"]["ok"].bool, true) }

        for (index, client) in clients.enumerated() {
            try client.sendLine(ITLineClient.requestLine(id: index, method: "CompleteNode", params: [
                "task_id": taskID, "node_id": leases[index].node, "lease_id": leases[index].lease,
                "result_payload": ["by": index]]))
        }
        for client in clients { XCTAssertNotNil(try client.readResponse()["result"]["event_id"].string) }

        let status = try taskStatus(admin, taskID)
        assertJSON(status["counts"], #"{"COMPLETED":1000}"#)
        XCTAssertEqual(status["task"]["status"].string, "COMPLETED")

        let baseline = try daemon.openDescriptors()
        for client in clients { client.close() }
        try waitUntil("the daemon closed the 1,000 connections") {
            try daemon.openDescriptors() <= baseline - connections
        }
        XCTAssertEqual(try admin.call("Health")["status"].string, "ok")
    }

    /// A client that half-closes (shutdown of its write side) still reads every answer, a
    /// parked request's included (answered null), then EOF. Many at once leak nothing.
    func testHalfClosedConnectionsReadEveryAnswer() throws {
        let daemon = try makeDaemon()
        let admin = try connect(daemon)
        let nodeID = itUUID()
        let taskID = try registerTask(admin, nodes: [nodeDef(nodeID)])
        _ = try acquire(admin, taskID)   // nothing runnable any more: the next acquire parks

        let client = try connect(daemon)
        var text = ""
        text += ITLineClient.requestLine(id: 1, method: "Health", params: nil) + "\n"
        text += ITLineClient.requestLine(id: 2, method: "AcquireNextNode", params: ["task_id": taskID, "wait_ms": 60_000]) + "\n"
        text += ITLineClient.requestLine(id: 3, method: "TaskStatus", params: ["task_id": taskID]) + "\n"
        text += ITLineClient.requestLine(id: 4, method: "Health", params: nil)   // no newline: the last line
        try client.send(text)
        client.shutdownWrite()
        let answers = try client.readUntilEOF().map { try ITJSON.parse($0) }
        XCTAssertEqual(answers.map { $0["id"].int }, [1, 2, 3, 4], "\(answers)")
        if answers.count == 4 {
            XCTAssertEqual(answers[0]["result"]["status"].string, "ok")
            XCTAssertTrue(answers[1]["result"].isNull, "the parked acquire is answered null at EOF: \(answers[1])")
            XCTAssertEqual(answers[2]["result"]["counts"]["RUNNING"].int, 1)
            XCTAssertEqual(answers[3]["result"]["status"].string, "ok")
        }

        let baseline = try daemon.openDescriptors()
        var many: [ITLineClient] = []
        for index in 0..<100 {
            let c = try ITLineClient.connect(daemon.socketPath)
            try c.sendLine(ITLineClient.requestLine(id: index, method: "TaskStatus", params: ["task_id": taskID]))
            c.shutdownWrite()
            many.append(c)
        }
        for (index, c) in many.enumerated() {
            let lines = try c.readUntilEOF()
            XCTAssertEqual(lines.count, 1)
            XCTAssertEqual(try lines.first.map { try ITJSON.parse($0)["id"].int } ?? nil, index)
            c.close()
        }
        try waitUntil("half-closed connections are gone") { try daemon.openDescriptors() <= baseline }
        XCTAssertEqual(try admin.call("Health")["status"].string, "ok")
    }

    /// A client that sends one byte at a time (multi-byte characters and \r\n split across
    /// reads) is answered correctly, and never holds up another client.
    func testClientSendingOneByteAtATime() throws {
        let daemon = try makeDaemon()
        let slow = try connect(daemon)
        let other = try connect(daemon)
        let goal = "slow é ü 😀 \u{2028} end"
        let nodeID = itUUID()
        var text = ITLineClient.requestLine(id: "a", method: "RegisterTask", params: [
            "goal": goal, "context": ["k": [1, 2.5, "ß"]], "initial_nodes": [["id": nodeID]]]) + "\r\n"
        text += "   \n"   // a blank line: no answer
        text += ITLineClient.requestLine(id: "b", method: "AcquireResourceLock", params: ["resource_key": "file:ü", "ttl_secs": 30]) + "\n"
        text += "{\"id\":\"c\",\"method\":\"Health\"}"
        let bytes = Array(text.utf8)
        for (offset, byte) in bytes.enumerated() {
            try slow.send([byte])
            if offset % 25 == 0 {
                let started = Date()
                XCTAssertEqual(try other.call("Health")["status"].string, "ok")
                XCTAssertLessThan(Date().timeIntervalSince(started), 0.5, "a byte-at-a-time client held up another")
            } else {
                usleep(200)
            }
        }
        slow.shutdownWrite()
        let answers = try slow.readUntilEOF().map { try ITJSON.parse($0) }
        XCTAssertEqual(answers.map { $0["id"].string }, ["a", "b", "c"], "\(answers)")
        guard answers.count == 3, let taskID = answers[0]["result"]["task_id"].string else { return }
        XCTAssertEqual(answers[1]["result"]["resource_key"].string, "file:ü")
        XCTAssertEqual(answers[2]["result"]["status"].string, "ok")
        let status = try taskStatus(other, taskID)
        XCTAssertEqual(status["task"]["goal"].string, goal, "the goal survives being split byte by byte")
        XCTAssertEqual(status["nodes"][0]["id"].string, nodeID)
    }

    /// The largest integers a client can send as durations and counters: each is answered
    /// (a result or -32602), and the daemon keeps running. Deadlines must not overflow.
    func testAbsurdNumbersAreAnsweredNotFatal() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let nodeID = itUUID(), secondID = itUUID()
        let taskID = try registerTask(client, nodes: [nodeDef(nodeID), nodeDef(secondID, [nodeID])])
        let big = Int64.max
        let requests: [(String, [String: Any])] = [
            ("AcquireResourceLock", ["resource_key": "huge", "ttl_secs": big]),
            ("AcquireResourceLock", ["resource_key": "huge-2", "ttl_secs": big / 1000 + 1]),
            ("AcquireNextNode", ["task_id": taskID, "lease_ttl_secs": big]),
            ("ListTasks", ["limit": big]),
            ("ReadEvents", ["task_id": taskID, "after_seq": big, "limit": big]),
            ("ReadEvents", ["task_id": taskID, "after_seq": big]),
        ]
        var lockLease: String?
        var nodeLease: String?
        for (index, (method, params)) in requests.enumerated() {
            let answer = try client.rawCall(method, params)
            if answer["error"].exists {
                XCTAssertEqual(answer["error"]["code"].int, -32602, "\(method) \(params): \(answer)")
            }
            if method == "AcquireResourceLock", index == 0 { lockLease = answer["result"]["lease_id"].string }
            if method == "AcquireNextNode" { nodeLease = answer["result"]["lease_id"].string }
        }
        // Requests that wait for ever (or are refused): each on its own connection, as a
        // parked request holds up the later answers of its connection.
        let waits: [(String, [String: Any])] = [
            ("AcquireNextNode", ["task_id": taskID, "wait_ms": big]),
            ("AcquireResourceLock", ["resource_key": "huge", "wait_ms": big]),
            ("ReadEvents", ["task_id": taskID, "after_seq": big, "wait_ms": big]),
        ]
        for (method, params) in waits {
            let waiter = try connect(daemon)
            try waiter.sendLine(ITLineClient.requestLine(id: 1, method: method, params: params))
            XCTAssertEqual(try client.call("Health")["status"].string, "ok", "after \(method) \(params)")
            if case .line(let bytes) = waiter.readLineOutcome(timeout: 0.05) {
                let answer = try ITJSON.parse(bytes)
                XCTAssertEqual(answer["error"]["code"].int, -32602, "\(method) \(params) answered at once: \(answer)")
            }
        }
        XCTAssertTrue(daemon.isRunning, "the daemon died: \(daemon.currentStderr)")
        let other = try connect(daemon)
        if let lockLease {
            let beat = try other.rawCall("HeartbeatResourceLock", ["resource_key": "huge", "lease_id": lockLease, "ttl_secs": big])
            XCTAssertTrue(beat["result"].exists || beat["error"]["code"].int == -32602, "\(beat)")
        }
        if let nodeLease {
            let beat = try other.rawCall("HeartbeatNode", ["task_id": taskID, "node_id": nodeID, "lease_id": nodeLease,
                                                           "lease_ttl_secs": big])
            XCTAssertTrue(beat["result"].exists || beat["error"]["code"].int == -32602, "\(beat)")
        }
        XCTAssertEqual(try other.call("Health")["status"].string, "ok", "the daemon survives: \(daemon.currentStderr)")
        XCTAssertTrue(daemon.isRunning)
        // And what it took is still readable after a restart.
        other.close()
        client.close()
        XCTAssertEqual(try daemon.stop(), .exited(0))
        try daemon.start()
        XCTAssertEqual(try taskStatus(try connect(daemon), taskID)["task"]["id"].string, taskID)
    }

    /// Connections dropped in the middle of a line, by an orderly close or a reset, with or
    /// without answers waiting for them: nothing half-read is executed, nothing leaks, and
    /// the daemon goes on serving.
    func testConnectionsDroppedMidLine() throws {
        let daemon = try makeDaemon()
        let probe = try connect(daemon)
        _ = try probe.call("Health")
        let baselineFDs = try daemon.openDescriptors()
        var goals: [String] = []
        for index in 0..<60 {
            let client = try ITLineClient.connect(daemon.socketPath)
            let goal = "dropped-\(index)-é"
            goals.append(goal)
            let line = Array(ITLineClient.requestLine(id: index, method: "RegisterTask", params: [
                "goal": goal, "initial_nodes": [["id": itUUID()]]]).utf8)
            // Anywhere before the closing brace, a multi-byte character's middle included.
            let cut = 1 + (index * 7919) % (line.count - 2)
            switch index % 4 {
            case 0:
                try client.send(Array(line[..<cut]))
                client.close()
            case 1:
                try client.send(Array(line[..<cut]))
                client.abort()
            case 2:
                // A whole request whose answer nobody reads, then half a line, then a reset.
                try client.sendLine(ITLineClient.requestLine(id: "whole", method: "DescribeInterface", params: nil))
                try client.send(Array(line[..<cut]))
                client.abort()
            default:
                // Half a line, a pause (so it is read on its own), then an orderly close.
                try client.send(Array(line[..<cut]))
                XCTAssertEqual(try probe.call("Health")["status"].string, "ok")
                client.close()
            }
        }
        XCTAssertEqual(try probe.call("Health")["status"].string, "ok")
        try waitUntil("dropped connections are closed") { try daemon.openDescriptors() <= baselineFDs }
        let tasks = try probe.call("ListTasks", ["limit": 1000])["tasks"].array ?? []
        let registered = Set(tasks.compactMap { $0["goal"].string })
        XCTAssertTrue(registered.isDisjoint(with: goals), "half a line was executed: \(registered.intersection(goals))")
        XCTAssertTrue(daemon.isRunning)
    }
}
