// libFuzzer target: the line framer plus the request decoder, as a connection drives them.
//
// Input: byte 0 picks the framer's line limit (small, so that oversized lines are
// reached), byte 1 seeds the choices of read sizes and of when delivery stops (as
// back-pressure stops it), the rest is the byte stream a client sends.
//
// Checked:
// - the framer hands out exactly the lines a plain split gives, in order, up to the first
//   line that reaches the limit, and the unfinished last line at the end of input;
// - every non-blank line gets exactly one answer line (or parks), which is a JSON object
//   with either "result" or an "error" {code, message, data.reason}; the id is echoed as
//   the request wrote it, and a line that does not parse is answered without one;
// - the Coordinator behind the handler keeps its invariants after every line, and every
//   parked request is answered at the end.
//
// The handler starts with a task registered with known node ids. Ids the daemon makes up
// cannot be guessed, so in a delivered line the placeholder TTTTTTTT-TTTT-4TTT-8TTT-TTTTTTTTTTTT
// becomes that task's id and LLLLLLLL-LLLL-4LLL-8LLL-LLLLLLLLLLLL the last lease id answered
// (same length, after framing): generated requests can then name a real task and lease.

import AgentdBase
import AgentdCore
import AgentdProtocol
import CoordinatorInvariants
import Reactor

let knownTaskLine = #"{"id":0,"method":"RegisterTask","params":{"goal":"fuzz","initial_nodes":[{"id":"11111111-1111-4111-8111-111111111111"},{"id":"22222222-2222-4222-8222-222222222222","dependencies":["11111111-1111-4111-8111-111111111111"]}]}}"#

final class DecoderRun {
    let clock = ManualClock()
    let coordinator: Coordinator
    let handler: RequestHandler
    var parked: [UInt64: RequestHandler.ParkedRequest] = [:]
    var answers: [UInt8] = []
    var checkTape = JSONTape()
    var requestTape = JSONTape()
    var taskId: [UInt8] = []
    var invariants = InvariantChecker()
    var lastLeaseId: [UInt8] = Array("00000000-0000-4000-8000-000000000000".utf8)
    static let taskPlaceholder = Array("TTTTTTTT-TTTT-4TTT-8TTT-TTTTTTTTTTTT".utf8)
    static let leasePlaceholder = Array("LLLLLLLL-LLLL-4LLL-8LLL-LLLLLLLLLLLL".utf8)

    init() {
        coordinator = Coordinator(settings: .init(nodeTimeoutSecs: 30, contextEventLimit: 3),
                                  clock: clock, ids: UUIDGenerator(seed: 1))
        handler = RequestHandler(coordinator: coordinator, storeFacts: .init(schemaVersion: 4, latestSchemaVersion: 4))
        coordinator.onWaiterResolved = { [unowned self] waiter, outcome in
            guard let request = self.parked.removeValue(forKey: waiter.id) else {
                invariantFailure("waiter \(waiter.id) resolved but never parked (or twice)")
            }
            var out: [UInt8] = []
            self.handler.appendResolution(outcome, of: request, to: &out)
            self.checkAnswer(out, request: nil)
        }
        var setup = Array(knownTaskLine.utf8)
        var out: [UInt8] = []
        setup.withUnsafeMutableBytes { _ = handler.handle(line: UnsafeRawBufferPointer($0), connection: 1, into: &out) }
        let opening = Array(#"{"id":0,"result":{"task_id":""#.utf8)
        guard out.starts(with: opening), out.count >= opening.count + 36 else {
            invariantFailure("setup failed: \(String(decoding: out, as: UTF8.self))")
        }
        taskId = Array(out[opening.count..<(opening.count + 36)])
    }

    /// The line with its placeholders replaced by the ids they stand for.
    func substituted(_ line: UnsafeRawBufferPointer) -> [UInt8] {
        var bytes = Array(line)
        guard bytes.count >= 36 else { return bytes }
        var i = 0
        while i + 36 <= bytes.count {
            if bytes[i] == UInt8(ascii: "T") && bytes[i..<(i + 36)].elementsEqual(DecoderRun.taskPlaceholder) {
                bytes.replaceSubrange(i..<(i + 36), with: taskId)
                i += 36
            } else if bytes[i] == UInt8(ascii: "L") && bytes[i..<(i + 36)].elementsEqual(DecoderRun.leasePlaceholder) {
                bytes.replaceSubrange(i..<(i + 36), with: lastLeaseId)
                i += 36
            } else {
                i += 1
            }
        }
        return bytes
    }

    /// One line through the handler, as the server does it.
    func handle(_ raw: UnsafeRawBufferPointer, connection: UInt64) {
        substituted(raw).withUnsafeBytes { handleSubstituted($0, connection: connection) }
    }

    private func handleSubstituted(_ line: UnsafeRawBufferPointer, connection: UInt64) {
        var out: [UInt8] = []
        if let request = handler.handle(line: line, connection: connection, into: &out) {
            guard out.isEmpty else { invariantFailure("a parked request also wrote an answer") }
            guard coordinator.waiters[request.waiter] != nil else { invariantFailure("parked with no waiter") }
            parked[request.waiter] = request
        } else if isBlank(line) {
            guard out.isEmpty else { invariantFailure("a blank line was answered") }
        } else {
            checkAnswer(out, request: line)
        }
        invariants.enforce(coordinator)
    }

    func isBlank(_ line: UnsafeRawBufferPointer) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A || $0 == 0x0B || $0 == 0x0C }
    }

    /// One answer line: a JSON object with a result or an error, the request's id echoed.
    func checkAnswer(_ out: [UInt8], request: UnsafeRawBufferPointer?) {
        guard out.last == 0x0A, out.firstIndex(of: 0x0A) == out.count - 1 else {
            invariantFailure("answer is not one line: \(String(decoding: out.prefix(300), as: UTF8.self))")
        }
        out.withUnsafeBytes { raw in
            let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - 1)])
            do {
                try checkTape.parse(body)
            } catch {
                invariantFailure("answer is not JSON (\(error)): \(String(decoding: body.prefix(300), as: UTF8.self))")
            }
            let answer = JSONDocument(tape: checkTape, input: body)
            guard answer.kind(answer.root) == .object else { invariantFailure("answer is not an object") }
            let result = answer.member(answer.root, "result")
            let error = answer.member(answer.root, "error")
            guard (result == nil) != (error == nil) else { invariantFailure("answer needs exactly one of result and error") }
            if let result, let lease = answer.member(result, "lease_id"), answer.kind(lease) == .string {
                let raw = answer.raw(lease)
                if raw.count == 38 { lastLeaseId = Array(raw[1..<37]) }
            }
            if let error {
                guard let code = answer.member(error, "code"), answer.kind(code) == .number,
                      let message = answer.member(error, "message"), answer.kind(message) == .string,
                      let data = answer.member(error, "data"), let reason = answer.member(data, "reason"),
                      answer.kind(reason) == .string else {
                    invariantFailure("malformed error: \(String(decoding: body.prefix(300), as: UTF8.self))")
                }
            }
            guard let request else { return }
            var echoed: [UInt8]? = nil
            if let id = answer.member(answer.root, "id") { echoed = []; answer.appendCompact(id, to: &echoed!) }
            checkEcho(echoed, request: request, isError: error != nil)
        }
    }

    /// The id comes back as the request wrote it; a request that is not a JSON object with a
    /// string method is answered without one.
    func checkEcho(_ echoed: [UInt8]?, request line: UnsafeRawBufferPointer, isError: Bool) {
        var lower = 0, upper = line.count
        func space(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A || b == 0x0B || b == 0x0C }
        while lower < upper && space(line[lower]) { lower += 1 }
        while upper > lower && space(line[upper - 1]) { upper -= 1 }
        let trimmed = UnsafeRawBufferPointer(rebasing: line[lower..<upper])
        guard (try? requestTape.parse(trimmed)) != nil else {
            guard isError, echoed == nil else { invariantFailure("a line that does not parse was answered with an id or a result") }
            return
        }
        let request = JSONDocument(tape: requestTape, input: trimmed)
        guard request.kind(request.root) == .object, let method = request.member(request.root, "method"),
              request.kind(method) == .string else {
            guard isError, echoed == nil else { invariantFailure("a request without a string method was answered with an id or a result") }
            return
        }
        var expected: [UInt8]? = nil
        if let id = request.presentMember(request.root, "id") {
            expected = []
            request.appendCompact(id, to: &expected!)
        }
        guard echoed == expected else {
            invariantFailure("id echoed as \(echoed.map { String(decoding: $0, as: UTF8.self) } ?? "nothing"), request had \(expected.map { String(decoding: $0, as: UTF8.self) } ?? "none")")
        }
    }

    /// Feeds the stream through a framer in pseudo-random reads, stopping delivery now and
    /// then, and compares the lines it handed out with a plain split.
    func run(maxLine: Int, seed: UInt64, stream: UnsafeRawBufferPointer) {
        var rng = SplitMix(seed: seed)
        let framer = LineFramer(maxLineBytes: maxLine)
        var delivered: [[UInt8]] = []
        var connection: UInt64 = 1
        let deliver: (UnsafeRawBufferPointer) -> Bool = { line in
            delivered.append(Array(line))
            self.handle(line, connection: connection)
            if rng.below(8) == 0 {
                // Between lines, time passes and the timer fires, as in the loop.
                self.clock.advance(ms: Int64(rng.below(3)) * 700)
                self.coordinator.expireDue()
                self.invariants.enforce(self.coordinator, expiry: .nothingDue)
            }
            return rng.below(4) != 0
        }
        var outcome = LineFramer.Outcome.needMoreBytes
        var offset = 0
        while offset < stream.count && outcome != .oversized {
            // Usually drain what was stashed before reading more, as the connection does.
            while outcome == .stopped && rng.below(5) != 0 { outcome = framer.drain(deliver) }
            if outcome == .oversized { break }
            let size = min(stream.count - offset, 1 + rng.below(rng.below(2) == 0 ? 8 : 200))
            outcome = framer.feed(UnsafeRawBufferPointer(rebasing: stream[offset..<(offset + size)]), deliver)
            offset += size
            if rng.below(16) == 0 {
                connection = connection == 1 ? 2 : 1
                coordinator.connectionClosed(connection)
                // A closed connection's parked requests leave without an answer.
                for id in parked.keys where coordinator.waiters[id] == nil { parked[id] = nil }
                invariants.enforce(coordinator)
            }
        }
        while outcome == .stopped { outcome = framer.drain(deliver) }
        // End of input: nothing is stashed now (a connection reads no further while it is).
        if outcome != .oversized { outcome = framer.finish(deliver) }
        compare(delivered, stream: stream, maxLine: maxLine, oversized: outcome == .oversized)
        // Shutdown answers every parked request.
        coordinator.endAllWaiters()
        guard parked.isEmpty else { invariantFailure("\(parked.count) parked requests never answered") }
        invariants.enforce(coordinator)
    }

    func compare(_ delivered: [[UInt8]], stream: UnsafeRawBufferPointer, maxLine: Int, oversized: Bool) {
        var expected: [[UInt8]] = []
        var expectOversized = false
        var current: [UInt8] = []
        for byte in stream {
            if byte == 0x0A {
                if current.count >= maxLine { expectOversized = true; break }
                expected.append(current)
                current.removeAll()
            } else {
                current.append(byte)
                if current.count >= maxLine { expectOversized = true; break }
            }
        }
        if !expectOversized && !current.isEmpty { expected.append(current) }
        guard oversized == expectOversized else {
            invariantFailure("framer said oversized \(oversized), a plain split says \(expectOversized)")
        }
        guard delivered == expected else {
            invariantFailure("framer delivered \(delivered.count) lines \(delivered.prefix(4).map { $0.count }), a plain split gives \(expected.count) \(expected.prefix(4).map { $0.count })")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func decoderFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let maxLine = 8 + Int(data[0]) * 8
    let stream = UnsafeRawBufferPointer(start: data + 2, count: size - 2)
    DecoderRun().run(maxLine: maxLine, seed: UInt64(data[1]), stream: stream)
    return 0
}
