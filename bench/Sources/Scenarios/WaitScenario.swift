import Reactor

/// `wait` (agentd only): hand-off latency to parked requests. `--waiters` connections each park one
/// request with `wait_ms`; the measured time runs from the request that frees something (the
/// CompleteNode that makes the next node runnable, the ReleaseResourceLock of a held lock) to the
/// parked answer that receives it. The receiver then frees it in turn and parks again at the back
/// of the queue, so hand-offs go round the waiters one at a time.
///
/// Nodes: a chain gate -> n1 -> n2 -> ...; the bench holds the gate, then every waiter parks an
/// AcquireNextNode; completing node k makes node k+1 runnable. Locks: the bench holds one key,
/// every waiter parks an AcquireResourceLock on it; each release grants the next in FIFO order.
final class WaitRun {
    enum Kind: String { case node, lock }

    let options: Options
    let harness: Harness
    fileprivate var latency = LatencyStats()
    fileprivate var freedAt: UInt64 = 0
    fileprivate var handoffs = 0
    fileprivate var timeouts = 0
    fileprivate var wanted = 0

    init(options: Options, harness: Harness) {
        self.options = options
        self.harness = harness
    }

    func run() {
        measure(.node)
        measure(.lock)
    }

    private func measure(_ kind: Kind) {
        latency.reset()
        handoffs = 0
        timeouts = 0
        wanted = options.handoffs
        let controller = SyncClient(harness: harness)
        let waitMs = 600_000
        let park: [UInt8]
        let free: [UInt8]
        let makeFree: WaiterLink.FreeRequest
        switch kind {
        case .node:
            let created = controller.call(json: #"{"id":1,"method":"RegisterTask","params":{"goal":"wait hand-offs"}}"#)
            guard let task = created.stringValue(after: #""task_id":""#) else { fail("RegisterTask: \(created.text)") }
            addChain(task: task, count: wanted + 2, client: controller)
            let gate = controller.call(json: #"{"id":1,"method":"AcquireNextNode","params":{"task_id":"\#(task)","lease_owner":"gate"}}"#)
            guard let node = gate.stringValue(after: #""node_id":""#), let lease = gate.stringValue(after: #""lease_id":""#) else {
                fail("AcquireNextNode (gate): \(gate.text.prefix(300))")
            }
            park = bytes(#"{"id":1,"method":"AcquireNextNode","params":{"task_id":"\#(task)","lease_owner":"waiter","wait_ms":\#(waitMs)}}"# + "\n")
            free = bytes(#"{"id":1,"method":"CompleteNode","params":{"task_id":"\#(task)","node_id":"\#(node)","lease_id":"\#(lease)","result_payload":{}}}"# + "\n")
            let head = bytes(#"{"id":1,"method":"CompleteNode","params":{"task_id":"\#(task)","node_id":""#)
            makeFree = { answer, output in
                output.append(contentsOf: head)
                _ = answer.appendStringValue(after: AgentdAnswer.nodeID, to: &output)
                output.append("\",\"lease_id\":\"")
                _ = answer.appendStringValue(after: AgentdAnswer.leaseID, to: &output)
                output.append("\",\"result_payload\":{}}}\n")
            }
        case .lock:
            let key = "wait:\(monotonicNanos() % 1_000_000_007)"
            let held = controller.call(json: #"{"id":1,"method":"AcquireResourceLock","params":{"resource_key":"\#(key)","owner":"gate","ttl_secs":600}}"#)
            guard let lease = held.stringValue(after: #""lease_id":""#) else { fail("AcquireResourceLock: \(held.text)") }
            park = bytes(#"{"id":1,"method":"AcquireResourceLock","params":{"resource_key":"\#(key)","owner":"waiter","ttl_secs":600,"wait_ms":\#(waitMs)}}"# + "\n")
            free = bytes(#"{"id":1,"method":"ReleaseResourceLock","params":{"resource_key":"\#(key)","lease_id":"\#(lease)"}}"# + "\n")
            let head = bytes(#"{"id":1,"method":"ReleaseResourceLock","params":{"resource_key":"\#(key)","lease_id":""#)
            makeFree = { answer, output in
                output.append(contentsOf: head)
                _ = answer.appendStringValue(after: AgentdAnswer.leaseID, to: &output)
                output.append("\"}}\n")
            }
        }

        let waiters = harness.connectAll(count: options.waiters).map {
            WaiterLink(connection: $0, harness: harness, run: self, park: park, makeFree: makeFree)
        }
        for waiter in waiters { waiter.parkNow() }
        // Let every parked request reach the daemon before the first hand-off.
        harness.settle(milliseconds: 300 + Double(options.waiters) / 10)
        freedAt = monotonicNanos()
        controller.sendIgnoringAnswers(free)
        if !harness.run(timeoutSeconds: 120) {
            warn("bench: wait \(kind.rawValue): only \(handoffs) of \(wanted) hand-offs within 120 s")
        }
        for waiter in waiters { waiter.connection.close() }
        controller.close()
        harness.settle()

        print("wait \(kind.rawValue) agentd waiters=\(options.waiters): \(handoffs) hand-offs  \(latency.humanFields)"
              + (timeouts > 0 ? "  (\(timeouts) parked requests timed out)" : ""))
        print("RESULT scenario=wait kind=\(kind.rawValue) target=\(options.targetLabel) waiters=\(options.waiters) handoffs=\(handoffs) \(latency.resultFields) timeouts=\(timeouts)")
    }

    /// gate -> node 1 -> node 2 -> ... in AddNodes batches of 10,000.
    private func addChain(task: String, count: Int, client: SyncClient) {
        let ids = NodeIDs()
        var index = 0
        while index < count {
            var request = bytes(#"{"id":1,"method":"AddNodes","params":{"task_id":"\#(task)","nodes":["#)
            let end = min(count, index + 10_000)
            for node in index..<end {
                if node > index { request.append(UInt8(ascii: ",")) }
                request.append("{\"id\":\"")
                ids.append(node, to: &request)
                request.append("\"")
                if node > 0 {
                    request.append(",\"dependencies\":[\"")
                    ids.append(node - 1, to: &request)
                    request.append("\"]")
                }
                request.append("}")
            }
            request.append("]}}\n")
            let answer = client.call(request)[0]
            if answer.isErrorAnswer { fail("AddNodes: \(answer.text.prefix(300))") }
            index = end
        }
    }

    /// A parked request was answered with the freed thing: one hand-off.
    fileprivate func handedOff(at now: UInt64) {
        let nanos = now - freedAt
        latency.record(nanos)
        if options.verbose && nanos > 10_000_000 {
            warn("wait: hand-off \(handoffs + 1) took \(micros(nanos)) us")
        }
        handoffs += 1
        if handoffs >= wanted { harness.loop.stop() }
    }
}

/// One waiter: parks, and when its parked request is answered, frees what it got (timing starts)
/// and parks again in the same write.
private final class WaiterLink: Link {
    typealias FreeRequest = (UnsafeRawBufferPointer, inout [UInt8]) -> Void

    unowned let run: WaitRun
    let park: [UInt8]
    let makeFree: FreeRequest
    /// Answers to our own free requests, which come before the next parked answer.
    private var toIgnore = 0

    init(connection: Connection, harness: Harness, run: WaitRun, park: [UInt8], makeFree: @escaping FreeRequest) {
        self.run = run
        self.park = park
        self.makeFree = makeFree
        super.init(connection: connection, harness: harness)
    }

    func parkNow() {
        connection.output.append(contentsOf: park)
        sendNow()
    }

    override func received(_ line: UnsafeRawBufferPointer) {
        let now = monotonicNanos()
        if toIgnore > 0 {
            toIgnore -= 1
            if isAgentdError(line) { fail("freeing a hand-off failed: \(line.text.prefix(300))") }
            return
        }
        if isAgentdError(line) { fail("parked request: \(line.text.prefix(300))") }
        if line.hasSuffix(AgentdAnswer.nullResult) {
            run.timeouts += 1
            connection.output.append(contentsOf: park)
            sendAtEndOfTurn()
            return
        }
        run.handedOff(at: now)
        guard run.handoffs < run.wanted else { return }
        makeFree(line, &connection.output)
        toIgnore += 1
        connection.output.append(contentsOf: park)
        run.freedAt = monotonicNanos()
        sendNow()
    }
}
