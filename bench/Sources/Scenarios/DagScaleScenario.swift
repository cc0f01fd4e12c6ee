import Glibc

/// `dag-scale` (agentd only): for each size and shape, build one DAG by AddNodes, then time
/// AcquireNextNode + CompleteNode pairs on it, read the daemon's RSS per node, and (with
/// `--agentd-binary`) time a restart that loads it back.
///
/// Shapes: `chain` (each node depends on the one before: one runnable node at a time) and `fan`
/// (a root with every other node depending on it: completing the root makes them all runnable).
/// Batches stay under the 1 MiB line limit both ways (a batch of 25,000 nodes at most, whose
/// answer lists their ids), so a chain takes about 11,000 nodes a request and a fan 19,000.
struct DagScaleRun {
    let options: Options
    private static let maxLine = 1_040_000
    private static let maxBatchNodes = 25_000

    struct Outcome {
        var shape: String
        var nodes: Int
        var buildSeconds = 0.0
        var cycles = LatencyStats()
        var fanOutCompleteNanos: UInt64?
        var rssBytesPerNode: Double?
        var restartSeconds: Double?
        var stopSeconds: Double?
        var restartRSSBytesPerNode: Double?
    }

    func run() {
        var outcomes: [Outcome] = []
        var directory: String?
        if !options.agentdBinary.isEmpty {
            DaemonProcess.stopStartedOnSignals()
            var template = Array("/tmp/agentd-bench.XXXXXX".utf8CString)
            guard mkdtemp(&template) != nil else { fail("mkdtemp: \(String(cString: strerror(errno)))") }
            directory = String(cString: template)
        }
        let socketPath = directory.map { $0 + "/agentd.sock" } ?? options.socket
        let harness = Harness(socketPath: socketPath)
        for shape in options.shapes {
            for size in options.sizes {
                var daemon: DaemonProcess?
                var pid = options.pid
                if let directory {
                    daemon = DaemonProcess(binary: options.agentdBinary, socketPath: socketPath,
                                           databasePath: "\(directory)/\(shape)-\(size).db", sync: options.sync, home: directory)
                    _ = daemon!.start()
                    pid = daemon!.pid
                } else if pid == 0 {
                    pid = ProcStats.pidListening(on: socketPath) ?? 0
                }
                let outcome = measure(shape: shape, size: size, harness: harness, pid: pid, daemon: daemon)
                daemon?.stop()
                if !options.keepDirectory { daemon?.removeFiles() }
                print(outcome.humanLine)
                print(outcome.resultLine)
                outcomes.append(outcome)
            }
        }
        if let directory, !options.keepDirectory { rmdir(directory) }
        for shape in options.shapes {
            let runs = outcomes.filter { $0.shape == shape }
            guard let small = runs.first, let large = runs.last, runs.count > 1, small.cycles.p50 > 0 else { continue }
            let ratio = Double(large.cycles.p50) / Double(small.cycles.p50)
            print("dag-scale \(shape): acquire+complete p50 at \(large.nodes) / at \(small.nodes) nodes = \(fixed(ratio, 2))")
        }
    }

    private func measure(shape: String, size: Int, harness: Harness, pid: Int32, daemon: DaemonProcess?) -> Outcome {
        var outcome = Outcome(shape: shape, nodes: size)
        let client = SyncClient(harness: harness)
        let created = client.call(json: #"{"id":1,"method":"RegisterTask","params":{"goal":"dag-scale \#(shape) \#(size)"}}"#)
        guard let task = created.stringValue(after: #""task_id":""#) else { fail("RegisterTask: \(created.text)") }
        let baseline = ProcStats.sample(pid: pid)

        let began = monotonicNanos()
        build(shape: shape, size: size, task: task, client: client)
        outcome.buildSeconds = Double(monotonicNanos() - began) / 1e9
        if options.verbose { warn("dag-scale: built \(shape) of \(size) in \(fixed(outcome.buildSeconds, 2)) s") }
        let built = ProcStats.sample(pid: pid)
        if let baseline, let built {
            outcome.rssBytesPerNode = Double(built.rssKB - baseline.rssKB) * 1024 / Double(size)
        }

        let acquire = bytes(#"{"id":1,"method":"AcquireNextNode","params":{"task_id":"\#(task)","lease_owner":"dag-scale"}}"# + "\n")
        func acquireAndComplete() -> Bool {
            let answer = client.call(acquire)[0]
            if answer.isErrorAnswer { fail("AcquireNextNode: \(answer.text)") }
            guard let node = answer.stringValue(after: #""node_id":""#),
                  let lease = answer.stringValue(after: #""lease_id":""#) else { return false }
            let done = client.call(json: #"{"id":1,"method":"CompleteNode","params":{"task_id":"\#(task)","node_id":"\#(node)","lease_id":"\#(lease)","result_payload":{}}}"#)
            if done.isErrorAnswer { fail("CompleteNode: \(done.text)") }
            return true
        }
        if shape == "fan" {
            let start = monotonicNanos()
            guard acquireAndComplete() else { fail("the fan's root was not runnable") }
            outcome.fanOutCompleteNanos = monotonicNanos() - start
        }
        for _ in 0..<min(options.cycles, size - 1) {
            let start = monotonicNanos()
            guard acquireAndComplete() else { fail("no runnable node in the \(shape) of \(size)") }
            outcome.cycles.record(monotonicNanos() - start)
        }
        client.close()

        if let daemon {
            outcome.stopSeconds = daemon.stop()
            outcome.restartSeconds = daemon.start()
            if let baseline, let loaded = ProcStats.sample(pid: daemon.pid) {
                outcome.restartRSSBytesPerNode = Double(loaded.rssKB - baseline.rssKB) * 1024 / Double(size)
            }
        }
        return outcome
    }

    /// AddNodes in batches. Chain: node i has id i and depends on i - 1. Fan: node 0 (with an id) is
    /// the root; the others name only their dependency on it.
    private func build(shape: String, size: Int, task: String, client: SyncClient) {
        let ids = NodeIDs()
        let head = bytes(#"{"id":1,"method":"AddNodes","params":{"task_id":"\#(task)","nodes":["#)
        let tail = bytes("]}}\n")
        var request: [UInt8] = []
        request.reserveCapacity(DagScaleRun.maxLine + 200)
        var index = 0
        while index < size {
            request.removeAll(keepingCapacity: true)
            request.append(contentsOf: head)
            var inBatch = 0
            while index < size && inBatch < DagScaleRun.maxBatchNodes && request.count < DagScaleRun.maxLine {
                if inBatch > 0 { request.append(UInt8(ascii: ",")) }
                if shape == "chain" || index == 0 {
                    request.append("{\"id\":\"")
                    ids.append(index, to: &request)
                    request.append("\"")
                    if index > 0 {
                        request.append(",\"dependencies\":[\"")
                        ids.append(index - 1, to: &request)
                        request.append("\"]")
                    }
                    request.append("}")
                } else {
                    request.append("{\"dependencies\":[\"")
                    ids.append(0, to: &request)
                    request.append("\"]}")
                }
                index += 1
                inBatch += 1
            }
            request.append(contentsOf: tail)
            let answer = client.call(request)[0]
            if answer.isErrorAnswer { fail("AddNodes: \(answer.text.prefix(300))") }
        }
    }
}

extension DagScaleRun.Outcome {
    var humanLine: String {
        var line = "dag-scale \(shape) \(grouped(nodes)) nodes: built in \(fixed(buildSeconds, 2)) s"
        line += " (\(grouped(Int(Double(nodes) / max(buildSeconds, 1e-9)))) nodes/s);"
        line += " acquire+complete p50 \(micros(cycles.p50)) us, mean \(fixed(cycles.mean / 1000, 1)) us, p99 \(micros(cycles.p99)) us"
        if let fanOut = fanOutCompleteNanos { line += "; completing the root: \(micros(fanOut)) us" }
        if let rss = rssBytesPerNode { line += "; RSS \(Int(rss)) B/node" }
        if let restart = restartSeconds { line += "; restart loads it in \(fixed(restart, 2)) s" }
        if let rss = restartRSSBytesPerNode { line += " (then \(Int(rss)) B/node)" }
        return line
    }

    var resultLine: String {
        var line = "RESULT scenario=dag-scale target=agentd shape=\(shape) nodes=\(nodes)"
        line += " build_s=\(fixed(buildSeconds, 3)) cycle_p50=\(micros(cycles.p50)) cycle_mean=\(fixed(cycles.mean / 1000, 1))"
        line += " cycle_p99=\(micros(cycles.p99)) cycle_max=\(micros(cycles.max)) cycles=\(cycles.count)"
        line += " fanout_complete_us=" + (fanOutCompleteNanos.map(micros) ?? "na")
        line += " rss_b_per_node=" + (rssBytesPerNode.map { String(Int($0)) } ?? "na")
        line += " restart_s=" + (restartSeconds.map { fixed($0, 3) } ?? "na")
        line += " stop_s=" + (stopSeconds.map { fixed($0, 3) } ?? "na")
        line += " restart_rss_b_per_node=" + (restartRSSBytesPerNode.map { String(Int($0)) } ?? "na")
        return line
    }
}
