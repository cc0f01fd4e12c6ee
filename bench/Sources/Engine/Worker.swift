/// How an answer counts: a success, an empty answer that is still an answer (a contended lock's
/// null, nothing to lease), or an error.
enum Outcome {
    case ok, empty, error
}

/// One simulated agent on a connection: it has at most one request in flight, and decides its next
/// request from the answer to the previous one. A connection with pipeline depth P runs P workers.
protocol Worker: AnyObject {
    /// Appends the worker's next request, complete with its line ending.
    func appendRequest(to output: inout [UInt8])
    /// Reads the answer to the worker's request (its first line; continuation lines are skipped).
    func read(_ answer: UnsafeRawBufferPointer) -> Outcome
}

/// How a server frames its answers: one line, plus continuation lines for some answers
/// (a RESP bulk string, a beanstalkd job body).
protocol AnswerFraming: AnyObject {
    func continuationLines(after line: UnsafeRawBufferPointer) -> Int
}
