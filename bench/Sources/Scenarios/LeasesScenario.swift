/// `leases`: the work-item cycle, per worker: add one item to the queue, lease it, heartbeat once,
/// complete. A queue per connection (an agentd task, a beanstalkd tube) or one for all. Workers of a
/// connection share its queue; each adds before it leases, and a connection's requests are served in
/// order, so a lease always finds an item; if it does not (`.empty`), the worker adds again.
final class LeaseWorker: Worker {
    private enum Step { case add, acquire, heartbeat, complete }

    private let driver: LeaseDriver
    private let queue: [UInt8]
    private let owner: [UInt8]
    private var step = Step.add
    private var handle: [UInt8] = []

    init(driver: LeaseDriver, queue: [UInt8], owner: [UInt8]) {
        self.driver = driver
        self.queue = queue
        self.owner = owner
        handle.reserveCapacity(80)
    }

    func appendRequest(to output: inout [UInt8]) {
        switch step {
        case .add: driver.appendAdd(queue: queue, to: &output)
        case .acquire: driver.appendAcquire(queue: queue, owner: owner, to: &output)
        case .heartbeat: driver.appendHeartbeat(queue: queue, handle: handle, to: &output)
        case .complete: driver.appendComplete(queue: queue, handle: handle, to: &output)
        }
    }

    func read(_ answer: UnsafeRawBufferPointer) -> Outcome {
        switch step {
        case .add:
            let outcome = driver.readAdd(answer)
            if outcome == .ok { step = .acquire }
            return outcome
        case .acquire:
            let outcome = driver.readAcquire(answer, handle: &handle)
            step = outcome == .ok ? .heartbeat : .add
            return outcome
        case .heartbeat:
            let outcome = driver.readHeartbeat(answer)
            step = outcome == .ok ? .complete : .add
            return outcome
        case .complete:
            step = .add
            return driver.readComplete(answer)
        }
    }
}

func runLeases(_ options: Options, harness: Harness, driver: LeaseDriver, serverPID: Int32) {
    let setUp = SyncClient(harness: harness)
    let queues = driver.makeQueues(count: options.sharedTask ? 1 : options.connections, setUp)
    setUp.close()
    let runner = LoadRunner(harness: harness, config: options.loadConfig(serverPID: serverPID), framing: driver)
    let result = runner.run(
        makeWorker: { lane, slot in
            LeaseWorker(driver: driver, queue: queues[options.sharedTask ? 0 : lane], owner: bytes("bench-c\(lane)-s\(slot)"))
        },
        setUpConnection: { lane, output in
            driver.appendConnectionSetUp(queue: queues[options.sharedTask ? 0 : lane], to: &output)
        })
    report(scenario: "leases", options: options, fields: [("queue", options.sharedTask ? "shared" : "per-connection")], result)
}
