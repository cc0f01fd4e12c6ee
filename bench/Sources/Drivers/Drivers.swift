/// Traffic of the `locks` scenario, as each target speaks it.
protocol LockDriver: AnswerFraming {
    /// Once per run, before the load (e.g. loading a script).
    func prepare(_ client: SyncClient)
    /// Appends a request for the exclusive lock on `key`, held by `owner`.
    func appendAcquire(key: [UInt8], owner: [UInt8], to output: inout [UInt8])
    /// Reads an acquire's answer: `.ok` when granted (then `token` holds what the release needs),
    /// `.empty` when the lock is held by someone else.
    func readAcquire(_ answer: UnsafeRawBufferPointer, owner: [UInt8], token: inout [UInt8]) -> Outcome
    func appendRelease(key: [UInt8], token: [UInt8], to output: inout [UInt8])
    func readRelease(_ answer: UnsafeRawBufferPointer) -> Outcome
}

/// Traffic of the `leases` scenario: a work item is added to a queue (an agentd task, a beanstalkd
/// tube), leased, kept alive once, and completed.
protocol LeaseDriver: AnswerFraming {
    /// Makes `count` queues for the run and returns their names as the requests spell them.
    func makeQueues(count: Int, _ client: SyncClient) -> [[UInt8]]
    /// Requests a connection sends before any traffic (to use its queue); returns their answer lines.
    func appendConnectionSetUp(queue: [UInt8], to output: inout [UInt8]) -> Int
    func appendAdd(queue: [UInt8], to output: inout [UInt8])
    func readAdd(_ answer: UnsafeRawBufferPointer) -> Outcome
    func appendAcquire(queue: [UInt8], owner: [UInt8], to output: inout [UInt8])
    /// `.ok` with `handle` filled (what heartbeat and complete need), or `.empty` for nothing to lease.
    func readAcquire(_ answer: UnsafeRawBufferPointer, handle: inout [UInt8]) -> Outcome
    func appendHeartbeat(queue: [UInt8], handle: [UInt8], to output: inout [UInt8])
    func readHeartbeat(_ answer: UnsafeRawBufferPointer) -> Outcome
    func appendComplete(queue: [UInt8], handle: [UInt8], to output: inout [UInt8])
    func readComplete(_ answer: UnsafeRawBufferPointer) -> Outcome
}
