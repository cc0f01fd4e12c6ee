// Integration: line framing, pipelining and the envelope, at the byte level.

import XCTest
import Foundation

final class FramingTests: IntegrationTestCase {

    /// A line over 1 MiB gets exactly one -32001 answer without id, then the daemon closes
    /// the connection; other connections are unaffected.
    func testOversizedLineIsRefusedAndConnectionClosed() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let padding = String(repeating: "x", count: 1_048_576)
        let line = Array("{\"id\":1,\"method\":\"Health\",\"params\":{\"padding\":\"\(padding)\"}}\n".utf8)

        // Write from another thread: the daemon may close before it has read everything,
        // and the write then ends with EPIPE or ECONNRESET, which is fine.
        let writer = ITBackgroundWriter(client: client, bytes: line)
        let answer = client.readLineOutcome(timeout: 10)
        let writeDone = writer.wait(timeout: 10)
        XCTAssertTrue(writeDone, "the writer thread did not finish")

        guard case .line(let bytes) = answer else {
            XCTFail("expected one -32001 answer, got \(answer)")
            return
        }
        let response = try ITJSON.parse(bytes)
        assertError(response, code: -32001, message: "request exceeds 1048576 bytes", idCanonical: nil)

        switch client.readLineOutcome(timeout: 10) {
        case .eof(let pending):
            XCTAssertTrue(pending.isEmpty, "no partial data after the answer")
        case .failure(let code) where code == ECONNRESET:
            break // the daemon closed with our bytes unread: Linux reports a reset
        case let other:
            XCTFail("the daemon should close the connection after -32001, got \(other)")
        }

        let fresh = try connect(daemon)
        XCTAssertEqual(try fresh.call("Health")["status"].string, "ok")
    }

    /// A line of exactly 1,048,576 bytes counting its newline is still served.
    func testLineOfExactlyTheLimitIsServed() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        let head = "{\"id\":7,\"method\":\"Health\",\"params\":{\"padding\":\""
        let tail = "\"}}\n"
        let padding = String(repeating: "y", count: 1_048_576 - head.utf8.count - tail.utf8.count)
        let line = Array((head + padding + tail).utf8)
        XCTAssertEqual(line.count, 1_048_576)
        let writer = ITBackgroundWriter(client: client, bytes: line)
        let response = try client.readResponse()
        XCTAssertTrue(writer.wait(timeout: 10))
        XCTAssertEqual(writer.errorCode, 0)
        XCTAssertEqual(response["id"].int, 7, "\(response)")
        XCTAssertEqual(response["result"]["status"].string, "ok", "\(response)")
    }

    /// 1,000 requests in one write come back as 1,000 answers in request order.
    func testPipelinedRequestsAnswerInOrder() throws {
        let daemon = try makeDaemon()
        let setup = try connect(daemon)
        let taskID = try registerTask(setup, nodes: [nodeDef(itUUID()), nodeDef(itUUID())])

        let client = try connect(daemon)
        var batch = ""
        for id in 1...1000 {
            if id % 2 == 0 {
                batch += ITLineClient.requestLine(id: id, method: "TaskStatus", params: ["task_id": taskID]) + "\n"
            } else {
                batch += ITLineClient.requestLine(id: id, method: "Health", params: nil) + "\n"
            }
        }
        let writer = ITBackgroundWriter(client: client, bytes: Array(batch.utf8))
        for id in 1...1000 {
            let response = try client.readResponse()
            guard response["id"].int == id else {
                XCTFail("answer \(id) out of order: \(response)")
                return
            }
            if id % 2 == 0 {
                XCTAssertEqual(response["result"]["task"]["id"].string, taskID, "answer \(id): \(response)")
            } else {
                XCTAssertEqual(response["result"]["status"].string, "ok", "answer \(id): \(response)")
            }
        }
        XCTAssertTrue(writer.wait(timeout: 10))
        XCTAssertEqual(writer.errorCode, 0)
    }

    /// \r\n endings, blank and whitespace-only lines, a final line without newline before
    /// EOF, a request without id, and ids of every JSON type.
    func testLineEndingsBlankLinesAndIDs() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)

        try client.send("{\"id\":\"crlf\",\"method\":\"Health\"}\r\n")
        let crlf = try client.readResponse()
        XCTAssertEqual(crlf["id"].string, "crlf")
        XCTAssertEqual(crlf["result"]["status"].string, "ok")

        // Blank and whitespace-only lines get no answer: the next answer is for the
        // request after them.
        try client.send("\n   \n\t\n \r\n{\"id\":\"after-blank\",\"method\":\"Health\"}\n")
        let afterBlank = try client.readResponse()
        XCTAssertEqual(afterBlank["id"].string, "after-blank", "blank lines must not be answered: \(afterBlank)")

        // No id: the answer has no "id" key.
        try client.sendLine("{\"method\":\"Health\"}")
        let noID = try client.readResponse()
        XCTAssertFalse(noID["id"].exists, "\(noID)")
        XCTAssertEqual(noID["result"]["status"].string, "ok")

        // Ids are echoed as given.
        let ids = ["\"abc\"", "\"\"", "42", "-7", "0", "2.5", "12345678901", "{\"k\":[1,\"x\",{\"z\":null}]}", "[1,2]", "true"]
        for id in ids {
            try client.sendLine("{\"id\":\(id),\"method\":\"Health\",\"params\":{}}")
            let response = try client.readResponse()
            XCTAssertEqual(response["id"].canonical, itCanonical(id), "id \(id) echoed: \(response)")
            XCTAssertEqual(response["result"]["status"].string, "ok")
        }
        // A null id: echoed as null, or left out as the original does.
        try client.sendLine("{\"id\":null,\"method\":\"Health\"}")
        let nullID = try client.readResponse()
        XCTAssertTrue(!nullID["id"].exists || nullID["id"].isNull, "null id: \(nullID)")
        XCTAssertEqual(nullID["result"]["status"].string, "ok")

        // Other top-level keys are ignored; the id is echoed on errors too.
        try client.sendLine("{\"jsonrpc\":\"2.0\",\"extra\":[1],\"id\":\"x1\",\"method\":\"Health\"}")
        XCTAssertEqual(try client.readResponse()["id"].string, "x1")
        try client.sendLine("{\"id\":{\"n\":1},\"method\":\"Nope\"}")
        assertError(try client.readResponse(), code: -32601, message: "unknown method: Nope", idCanonical: #"{"n":1}"#)

        // A last line with no newline, then EOF from our side: still answered, then closed.
        let last = try connect(daemon)
        try last.send("{\"id\":\"first\",\"method\":\"Health\"}\n{\"id\":\"last\",\"method\":\"Health\"}")
        last.shutdownWrite()
        XCTAssertEqual(try last.readResponse()["id"].string, "first")
        let lastAnswer = try last.readResponse()
        XCTAssertEqual(lastAnswer["id"].string, "last", "\(lastAnswer)")
        XCTAssertEqual(lastAnswer["result"]["status"].string, "ok")
        if case .line(let extra) = last.readLineOutcome(timeout: 10) {
            XCTFail("unexpected extra line: \(String(decoding: extra, as: UTF8.self))")
        }
    }

    /// Answers are compact JSON, one per line, and every success carries "result".
    func testAnswersAreCompactLines() throws {
        let daemon = try makeDaemon()
        let client = try connect(daemon)
        try client.sendLine("{\"id\":1,\"method\":\"Health\"}")
        let raw = String(decoding: try client.readLine(), as: UTF8.self)
        XCTAssertFalse(raw.contains("\n") || raw.contains("\r"), raw)
        XCTAssertFalse(raw.contains(": ") || raw.contains(", "), "compact JSON expected: \(raw)")
        let health = try ITJSON.parse(raw)
        XCTAssertEqual(health["result"]["status"].string, "ok")
        XCTAssertEqual(health["result"]["database"].string, "ok")
        XCTAssertEqual(health["result"]["running_timeout_secs"].int, 300, "default node timeout")
        XCTAssertEqual(health["result"]["context_event_limit"].int, 50, "default context event limit")
    }
}

/// Writes bytes to a client's socket on a background thread, so that the test can read
/// answers while a large write is still going.
final class ITBackgroundWriter {
    private let done = DispatchSemaphore(value: 0)
    private(set) var errorCode: Int32 = -1

    init(client: ITLineClient, bytes: [UInt8]) {
        let thread = Thread { [self] in
            self.errorCode = client.writeAll(bytes)
            self.done.signal()
        }
        thread.start()
    }

    /// Wait (bounded) for the write to end; the socket must stay open until then.
    func wait(timeout: TimeInterval) -> Bool {
        done.wait(timeout: .now() + timeout) == .success
    }
}
