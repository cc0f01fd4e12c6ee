import Glibc
import Reactor

/// Request and answer, one at a time, for set-up work and for scenarios that are sequential by nature
/// (dag-scale). `call` runs the loop until the answer is in. Answers to requests sent with
/// `sendIgnoringAnswers` are dropped as they arrive.
final class SyncClient: Link {
    private var lines: [[UInt8]] = []
    private var awaited = 0
    private var toDiscard = 0
    private(set) var isClosed = false

    /// Connects (retrying while the backlog is full) or ends the bench.
    convenience init(harness: Harness) {
        self.init(connection: harness.connectAll(count: 1)[0], harness: harness)
    }

    override func received(_ line: UnsafeRawBufferPointer) {
        if toDiscard > 0 {
            toDiscard -= 1
            return
        }
        lines.append(Array(line))
        if awaited > 0 && lines.count >= awaited { harness.loop.stop() }
    }

    override func closed() {
        isClosed = true
        if awaited > 0 { harness.loop.stop() }
    }

    /// Sends `request` (complete, with its line ending) and returns its answer: `answerLines` lines.
    func call(_ request: [UInt8], answerLines: Int = 1, timeoutSeconds: Double = 600) -> [[UInt8]] {
        precondition(lines.isEmpty, "SyncClient: answers left unread")
        connection.output.append(contentsOf: request)
        connection.flush()
        awaited = answerLines
        if lines.count < answerLines && !isClosed {
            if !harness.run(timeoutSeconds: timeoutSeconds) {
                fail("no answer within \(timeoutSeconds) s to: \(String(decoding: request.prefix(200), as: UTF8.self))")
            }
        }
        awaited = 0
        if lines.count < answerLines {
            fail("the server closed the connection instead of answering: \(String(decoding: request.prefix(200), as: UTF8.self))")
        }
        defer { lines.removeAll() }
        return lines
    }

    /// One-line JSON request (the line ending is added); returns the answer line.
    func call(json: String, timeoutSeconds: Double = 600) -> [UInt8] {
        call(bytes(json + "\n"), timeoutSeconds: timeoutSeconds)[0]
    }

    /// Sends without waiting; the coming `answerLines` lines are dropped.
    func sendIgnoringAnswers(_ request: [UInt8], answerLines: Int = 1) {
        toDiscard += answerLines
        connection.output.append(contentsOf: request)
        connection.flush()
    }

    func close() {
        connection.close()
    }
}

extension Array where Element == UInt8 {
    /// The JSON string after `key` (given with its quotes and colon, e.g. `"task_id":"`), or nil.
    func stringValue(after key: String) -> String? {
        withUnsafeBytes { line -> String? in
            var value: [UInt8] = []
            guard line.appendStringValue(after: bytes(key), to: &value) else { return nil }
            return String(decoding: value, as: UTF8.self)
        }
    }

    /// True when this agentd answer is an error (`"error":` before any result).
    var isErrorAnswer: Bool { withUnsafeBytes { isAgentdError($0) } }

    var text: String { String(decoding: self, as: UTF8.self) }
}
