/// `locks`: every worker acquires a lock and releases it with the token the grant gave, again and
/// again. Distinct keys: one key per worker, no contention. Shared keys: K hot keys picked at random;
/// a contended acquire's null counts as an answer and the worker tries again.
final class LockWorker: Worker {
    private let driver: LockDriver
    private let owner: [UInt8]
    private let keys: [[UInt8]]
    private var random: FastRandom
    private var key = 0
    private var holding = false
    private var token: [UInt8] = []

    init(driver: LockDriver, owner: [UInt8], keys: [[UInt8]], seed: UInt64) {
        self.driver = driver
        self.owner = owner
        self.keys = keys
        random = FastRandom(seed: seed)
        token.reserveCapacity(64)
    }

    func appendRequest(to output: inout [UInt8]) {
        if holding {
            driver.appendRelease(key: keys[key], token: token, to: &output)
        } else {
            key = keys.count == 1 ? 0 : random.below(keys.count)
            driver.appendAcquire(key: keys[key], owner: owner, to: &output)
        }
    }

    func read(_ answer: UnsafeRawBufferPointer) -> Outcome {
        if holding {
            holding = false
            return driver.readRelease(answer)
        }
        let outcome = driver.readAcquire(answer, owner: owner, token: &token)
        holding = outcome == .ok
        return outcome
    }
}

func runLocks(_ options: Options, harness: Harness, driver: LockDriver, serverPID: Int32) {
    let setUp = SyncClient(harness: harness)
    driver.prepare(setUp)
    let reader = options.bigReaderNodes > 0
        ? BigReader(socketPath: options.socket, nodes: options.bigReaderNodes, client: setUp) : nil
    setUp.close()
    reader?.start()
    defer { reader?.stop() }
    let tag = String(monotonicNanos() % 1_000_000_007, radix: 36)
    let hotKeys = options.sharedKeyCount.map { count in (0..<count).map { bytes("bench:\(tag):hot\($0)") } }
    let runner = LoadRunner(harness: harness, config: options.loadConfig(serverPID: serverPID), framing: driver)
    let result = runner.run(makeWorker: { lane, slot in
        let name = "\(tag)-c\(lane)-s\(slot)"
        return LockWorker(driver: driver, owner: bytes("bench-" + name),
                          keys: hotKeys ?? [bytes("bench:" + name)], seed: UInt64(lane * 1000 + slot + 1))
    })
    var fields = [("keys", options.keys)]
    if let reader {
        fields.append(("big_reader_nodes", String(options.bigReaderNodes)))
        fields.append(("big_reader_answers", String(reader.answers)))
    }
    report(scenario: "locks", options: options, fields: fields, result)
}

extension Options {
    func loadConfig(serverPID: Int32) -> LoadRunner.Config {
        LoadRunner.Config(connections: connections, pipeline: pipeline, warmupSeconds: warmupSeconds,
                          durationSeconds: durationSeconds, count: count, serverPID: serverPID)
    }
}
