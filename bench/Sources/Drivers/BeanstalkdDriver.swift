/// beanstalkd's text protocol: the lease cycle is put, reserve-with-timeout 0, touch, delete. A queue
/// is a tube; each connection uses and watches its own (or the shared one) and ignores `default`.
/// Job bodies are `{}`, like the empty payloads the agentd driver sends.
final class BeanstalkdDriver: LeaseDriver {
    private let put = bytes("put 0 0 120 2\r\n{}\r\n")
    private let reserve = bytes("reserve-with-timeout 0\r\n")
    private let inserted = bytes("INSERTED ")
    private let reserved = bytes("RESERVED ")
    private let timedOut = bytes("TIMED_OUT")
    private let deadlineSoon = bytes("DEADLINE_SOON")
    private let touched = bytes("TOUCHED")
    private let deleted = bytes("DELETED")
    private let runTag: String

    init() {
        runTag = String(monotonicNanos() % 1_000_000_007, radix: 36)
    }

    /// A RESERVED line is followed by the job's body (ours never contains a line break).
    func continuationLines(after line: UnsafeRawBufferPointer) -> Int {
        line.hasPrefix(reserved) ? 1 : 0
    }

    func makeQueues(count: Int, _ client: SyncClient) -> [[UInt8]] {
        (0..<count).map { bytes("bench-\(runTag)-\($0)") }
    }

    func appendConnectionSetUp(queue: [UInt8], to output: inout [UInt8]) -> Int {
        output.append("use ")
        output.append(contentsOf: queue)
        output.append("\r\nwatch ")
        output.append(contentsOf: queue)
        output.append("\r\nignore default\r\n")
        return 3
    }

    @inline(__always)
    func appendAdd(queue: [UInt8], to output: inout [UInt8]) {
        output.append(contentsOf: put)
    }

    @inline(__always)
    func readAdd(_ answer: UnsafeRawBufferPointer) -> Outcome { answer.hasPrefix(inserted) ? .ok : .error }

    @inline(__always)
    func appendAcquire(queue: [UInt8], owner: [UInt8], to output: inout [UInt8]) {
        output.append(contentsOf: reserve)
    }

    /// The handle is the job id's digits.
    @inline(__always)
    func readAcquire(_ answer: UnsafeRawBufferPointer, handle: inout [UInt8]) -> Outcome {
        if answer.hasPrefix(reserved) {
            handle.removeAll(keepingCapacity: true)
            var index = reserved.count
            while index < answer.count && answer[index] != UInt8(ascii: " ") {
                handle.append(answer[index])
                index += 1
            }
            return .ok
        }
        if answer.hasPrefix(timedOut) || answer.hasPrefix(deadlineSoon) { return .empty }
        return .error
    }

    @inline(__always)
    func appendHeartbeat(queue: [UInt8], handle: [UInt8], to output: inout [UInt8]) {
        output.append("touch ")
        output.append(contentsOf: handle)
        output.append("\r\n")
    }

    @inline(__always)
    func readHeartbeat(_ answer: UnsafeRawBufferPointer) -> Outcome { answer.hasPrefix(touched) ? .ok : .error }

    @inline(__always)
    func appendComplete(queue: [UInt8], handle: [UInt8], to output: inout [UInt8]) {
        output.append("delete ")
        output.append(contentsOf: handle)
        output.append("\r\n")
    }

    @inline(__always)
    func readComplete(_ answer: UnsafeRawBufferPointer) -> Outcome { answer.hasPrefix(deleted) ? .ok : .error }
}
