/// `swarm` (agentd only): traffic that looks like agents at work. Each cycle is picked at random:
///  - 70 %: a work item: RegisterTask with one node, AcquireNextNode, HeartbeatNode, CommitEvent,
///    CompleteNode (a task per item keeps TaskStatus answers small, as agents' tasks are);
///  - 20 %: a lock cycle on one of 1,024 shared file keys (rarely contended);
///  - 10 %: a look around: TaskStatus and ReadEvents of the worker's latest task.
final class SwarmWorker: Worker {
    private enum Step {
        case registerTask, acquireNode, heartbeat, commitEvent, completeNode
        case acquireLock, releaseLock
        case taskStatus, readEvents
    }

    private let driver: AgentdDriver
    private let owner: [UInt8]
    private let lockKeys: [[UInt8]]
    private var random: FastRandom
    private var step = Step.registerTask
    private var task: [UInt8] = []
    private var handle: [UInt8] = []
    private var token: [UInt8] = []
    private var key = 0

    private static let registerTask = bytes("{\"id\":1,\"method\":\"RegisterTask\",\"params\":{\"goal\":\"swarm item\",\"context\":{\"repo\":\"agentd\"},\"initial_nodes\":[{\"payload_schema\":{\"file\":\"src/main.swift\"}}]}}\n")
    private static let commitHead = bytes(#"{"id":1,"method":"CommitEvent","params":{"task_id":""#)
    private static let commitTail = bytes("\",\"payload\":{\"message\":\"edited src/main.swift\",\"lines\":42}}}\n")
    private static let statusHead = bytes(#"{"id":1,"method":"TaskStatus","params":{"task_id":""#)
    private static let readEventsHead = bytes(#"{"id":1,"method":"ReadEvents","params":{"task_id":""#)
    private static let readEventsTail = bytes("\",\"after_seq\":0,\"limit\":20}}\n")
    private static let closeParams = bytes("\"}}\n")

    init(driver: AgentdDriver, owner: [UInt8], lockKeys: [[UInt8]], seed: UInt64) {
        self.driver = driver
        self.owner = owner
        self.lockKeys = lockKeys
        random = FastRandom(seed: seed)
        task.reserveCapacity(40)
        handle.reserveCapacity(80)
        token.reserveCapacity(40)
    }

    private func startCycle() {
        let roll = random.below(100)
        if roll < 70 || (roll >= 90 && task.isEmpty) {
            step = .registerTask
        } else if roll < 90 {
            step = .acquireLock
            key = random.below(lockKeys.count)
        } else {
            step = .taskStatus
        }
    }

    func appendRequest(to output: inout [UInt8]) {
        switch step {
        case .registerTask:
            output.append(contentsOf: SwarmWorker.registerTask)
        case .acquireNode:
            driver.appendAcquire(queue: task, owner: owner, to: &output)
        case .heartbeat:
            driver.appendHeartbeat(queue: task, handle: handle, to: &output)
        case .commitEvent:
            output.append(contentsOf: SwarmWorker.commitHead)
            driver.appendLeaseFields(queue: task, handle: handle, to: &output)
            output.append(contentsOf: SwarmWorker.commitTail)
        case .completeNode:
            driver.appendComplete(queue: task, handle: handle, to: &output)
        case .acquireLock:
            driver.appendAcquire(key: lockKeys[key], owner: owner, to: &output)
        case .releaseLock:
            driver.appendRelease(key: lockKeys[key], token: token, to: &output)
        case .taskStatus:
            output.append(contentsOf: SwarmWorker.statusHead)
            output.append(contentsOf: task)
            output.append(contentsOf: SwarmWorker.closeParams)
        case .readEvents:
            output.append(contentsOf: SwarmWorker.readEventsHead)
            output.append(contentsOf: task)
            output.append(contentsOf: SwarmWorker.readEventsTail)
        }
    }

    func read(_ answer: UnsafeRawBufferPointer) -> Outcome {
        if isAgentdError(answer) {
            startCycle()
            return .error
        }
        var outcome = Outcome.ok
        switch step {
        case .registerTask:
            task.removeAll(keepingCapacity: true)
            if answer.appendStringValue(after: AgentdAnswer.taskID, to: &task) {
                step = .acquireNode
            } else {
                outcome = .error
                startCycle()
            }
        case .acquireNode:
            outcome = driver.readAcquire(answer, handle: &handle)
            if outcome == .ok { step = .heartbeat } else { startCycle() }
        case .heartbeat: step = .commitEvent
        case .commitEvent: step = .completeNode
        case .completeNode: startCycle()
        case .acquireLock:
            outcome = driver.readAcquire(answer, owner: owner, token: &token)
            if outcome == .ok { step = .releaseLock } else { startCycle() }
        case .releaseLock: startCycle()
        case .taskStatus: step = .readEvents
        case .readEvents: startCycle()
        }
        return outcome
    }
}

func runSwarm(_ options: Options, harness: Harness, driver: AgentdDriver, serverPID: Int32) {
    let tag = String(monotonicNanos() % 1_000_000_007, radix: 36)
    let lockKeys = (0..<1024).map { bytes("file:\(tag)/src/file\($0).swift") }
    let runner = LoadRunner(harness: harness, config: options.loadConfig(serverPID: serverPID), framing: driver)
    let result = runner.run(makeWorker: { lane, slot in
        SwarmWorker(driver: driver, owner: bytes("agent-c\(lane)-s\(slot)"), lockKeys: lockKeys,
                    seed: UInt64(lane * 1000 + slot + 7))
    })
    report(scenario: "swarm", options: options, fields: [], result)
}
