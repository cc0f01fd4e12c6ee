import Glibc
import Reactor

/// The closed-loop load engine: N connections, P workers each (the pipeline depth), one request in
/// flight per worker. Latency is measured per request, from the moment the request is queued to the
/// moment its answer is read. A warm-up runs unmeasured first; the run ends after the duration or
/// the count, whichever comes first, and waits for the answers still in flight.
final class LoadRunner {
    struct Config {
        var connections: Int
        var pipeline: Int
        var warmupSeconds: Double
        var durationSeconds: Double
        var count: Int
        var serverPID: Int32
    }

    struct Result {
        var seconds: Double
        var latency: LatencyStats
        var ok: Int
        var empty: Int
        var errors: Int
        var serverBefore: ProcSample?
        var serverAfter: ProcSample?
        var clientCPUNanos: UInt64

        var requests: Int { ok + empty + errors }
        var opsPerSecond: Double { seconds > 0 ? Double(requests) / seconds : 0 }
        /// Server CPU microseconds per request over the measured window.
        var serverCPUMicrosPerOp: Double? {
            guard let before = serverBefore, let after = serverAfter, requests > 0 else { return nil }
            return Double(after.cpuNanos - before.cpuNanos) / 1000 / Double(requests)
        }
        var clientCPUMicrosPerOp: Double { requests > 0 ? Double(clientCPUNanos) / 1000 / Double(requests) : 0 }
    }

    let harness: Harness
    let config: Config
    let framing: AnswerFraming

    fileprivate var issuing = true
    fileprivate var measuring = false
    fileprivate var latency = LatencyStats()
    fileprivate var ok = 0
    fileprivate var empty = 0
    fileprivate var errors = 0
    private var errorSamples: [String] = []
    private var lanes: [Lane] = []
    private var drainedLanes = 0
    private var measureStart: UInt64 = 0
    private var measureEnd: UInt64 = 0
    private var serverBefore: ProcSample?
    private var serverAfter: ProcSample?
    private var clientCPUStart: UInt64 = 0
    private var clientCPUEnd: UInt64 = 0
    private var finished = false
    private var drainLimit: Reactor.Timer?
    fileprivate var lostConnection = false

    init(harness: Harness, config: Config, framing: AnswerFraming) {
        self.harness = harness
        self.config = config
        self.framing = framing
    }

    /// Runs the load. `makeWorker(lane, slot)` makes the workers; `setUpConnection(lane, &output)`
    /// may append set-up requests sent first on each connection and returns how many answer lines
    /// they produce (skipped, not measured).
    func run(makeWorker: (Int, Int) -> Worker,
             setUpConnection: ((Int, inout [UInt8]) -> Int)? = nil) -> Result {
        let connections = harness.connectAll(count: config.connections)
        for (index, connection) in connections.enumerated() {
            let workers = (0..<config.pipeline).map { makeWorker(index, $0) }
            let lane = Lane(connection: connection, harness: harness, runner: self, workers: workers)
            if let setUpConnection {
                lane.setUpLines = setUpConnection(index, &connection.output)
            }
            lanes.append(lane)
        }

        let warmup = Reactor.Timer(loop: harness.loop)
        let deadline = Reactor.Timer(loop: harness.loop)
        drainLimit = Reactor.Timer(loop: harness.loop)
        let begin = { [unowned self] in
            self.beginMeasuring()
            if self.config.durationSeconds > 0 {
                deadline.start(afterMs: UInt64(self.config.durationSeconds * 1000)) { [unowned self] in self.finish() }
            }
        }
        for lane in lanes { lane.start() }
        if config.warmupSeconds > 0 {
            warmup.start(afterMs: UInt64(config.warmupSeconds * 1000)) { begin() }
        } else {
            begin()
        }
        harness.loop.run()

        warmup.close()
        deadline.close()
        drainLimit?.close()
        for lane in lanes { lane.connection.close() }
        lanes.removeAll()
        harness.settle()

        if lostConnection { fail("the server closed a connection during the run") }
        for sample in errorSamples { warn("bench: error answer: \(sample)") }
        return Result(seconds: Double(measureEnd - measureStart) / 1e9, latency: latency,
                      ok: ok, empty: empty, errors: errors,
                      serverBefore: serverBefore, serverAfter: serverAfter,
                      clientCPUNanos: clientCPUEnd - clientCPUStart)
    }

    private func beginMeasuring() {
        latency.reset()
        ok = 0
        empty = 0
        errors = 0
        serverBefore = ProcStats.sample(pid: config.serverPID)
        clientCPUStart = ProcStats.selfCPUNanos()
        measureStart = monotonicNanos()
        measuring = true
    }

    /// Stops measuring and issuing; the run ends when every lane has its answers back.
    fileprivate func finish() {
        if finished { return }
        finished = true
        if measuring {
            measureEnd = monotonicNanos()
            clientCPUEnd = ProcStats.selfCPUNanos()
            serverAfter = ProcStats.sample(pid: config.serverPID)
        }
        measuring = false
        issuing = false
        for lane in lanes where lane.inFlight == 0 { laneDrained(lane) }
        // Answers still in flight get a while to come back; then the run ends anyway.
        drainLimit?.start(afterMs: 10_000) { [unowned self] in
            warn("bench: \(self.lanes.count - self.drainedLanes) connections still had answers in flight after 10 s")
            self.harness.loop.stop()
        }
    }

    /// Counts `lane` as done (once) and stops the loop when every lane is.
    fileprivate func laneDrained(_ lane: Lane) {
        if lane.drained { return }
        lane.drained = true
        drainedLanes += 1
        if drainedLanes == lanes.count { harness.loop.stop() }
    }

    @inline(__always)
    fileprivate func record(_ nanos: UInt64, _ outcome: Outcome, _ line: UnsafeRawBufferPointer) {
        guard measuring else { return }
        latency.record(nanos)
        switch outcome {
        case .ok: ok += 1
        case .empty: empty += 1
        case .error:
            errors += 1
            if errorSamples.count < 3 { errorSamples.append(String(line.text.prefix(300))) }
        }
        if config.count > 0 && ok + empty + errors >= config.count { finish() }
    }
}

/// One connection of the run and its workers. Answers come back in request order, so a ring of
/// worker indexes tells whose answer each line is.
private final class Lane: Link {
    unowned let runner: LoadRunner
    let workers: [Worker]
    let framing: AnswerFraming
    var setUpLines = 0
    var drained = false
    private var continuation = 0
    private var ring: [Int]
    private var head = 0
    private(set) var inFlight = 0
    private var sentAt: [UInt64]

    init(connection: Connection, harness: Harness, runner: LoadRunner, workers: [Worker]) {
        self.runner = runner
        self.workers = workers
        framing = runner.framing
        ring = [Int](repeating: 0, count: workers.count)
        sentAt = [UInt64](repeating: 0, count: workers.count)
        super.init(connection: connection, harness: harness)
    }

    /// Queues every worker's first request and sends them (with any set-up requests before them).
    func start() {
        let now = monotonicNanos()
        for slot in 0..<workers.count { issue(slot, at: now) }
        sendNow()
    }

    @inline(__always)
    private func issue(_ slot: Int, at now: UInt64) {
        workers[slot].appendRequest(to: &connection.output)
        sentAt[slot] = now
        var tail = head + inFlight
        if tail >= ring.count { tail -= ring.count }
        ring[tail] = slot
        inFlight += 1
    }

    override func received(_ line: UnsafeRawBufferPointer) {
        if setUpLines > 0 {
            setUpLines -= 1
            return
        }
        if continuation > 0 {
            continuation -= 1
            return
        }
        guard inFlight > 0 else { fail("an answer nobody asked for: \(line.text.prefix(200))") }
        let now = monotonicNanos()
        let slot = ring[head]
        head += 1
        if head == ring.count { head = 0 }
        inFlight -= 1
        continuation = framing.continuationLines(after: line)
        let outcome = workers[slot].read(line)
        runner.record(now &- sentAt[slot], outcome, line)
        if runner.issuing {
            issue(slot, at: now)
            sendAtEndOfTurn()
        } else if inFlight == 0 {
            runner.laneDrained(self)
        }
    }

    override func closed() {
        if runner.issuing {
            runner.lostConnection = true
            runner.finish()
            harness.loop.stop()
        } else if inFlight > 0 {
            // Closed by the server while draining: its answers will not come.
            runner.lostConnection = true
            inFlight = 0
            runner.laneDrained(self)
        }
    }
}
