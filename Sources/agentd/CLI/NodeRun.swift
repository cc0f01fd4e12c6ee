import AgentdClient
import CProcess
import Glibc

/// One node under `agentd work`: run the command on it, heartbeat the lease meanwhile, then
/// complete or fail the node with what the command printed.
struct NodeRun {
    let plan: WorkPlan
    let state: WorkState
    let slot: Int
    let daemon: AgentdConnection
    let acquired: AgentdReply

    /// The most of the command's stdout a completed node keeps, and of its stderr a failed one.
    static let outputLimit = 256 * 1024
    static let stderrLimit = 4 * 1024

    func run() {
        let lease = acquired.result
        let nodeId = lease["node_id"]?.stringValue ?? ""
        let leaseId = lease["lease_id"]?.stringValue ?? ""
        let name = lease["context"]?["node"]?["name"]?.stringValue
        let label = name ?? TaskRef.short(nodeId)
        let ids: JSONObject = members(["task_id": .string(plan.taskId), "node_id": .string(nodeId), "lease_id": .string(leaseId)])

        var environment = ["AGENTD_TASK_ID": plan.taskId, "AGENTD_NODE_ID": nodeId, "AGENTD_LEASE_ID": leaseId]
            .merging(plan.daemonEnvironment) { mine, _ in mine }
        if let name { environment["AGENTD_NODE_NAME"] = name }
        let child: ChildProcess?
        var output = Capture()
        do {
            let input = try NodeRun.readableFile(acquired.resultText)
            defer { close(input) }
            let out = try NodeRun.pipe()
            let err: (read: Int32, write: Int32)
            do { err = try NodeRun.pipe() } catch {
                close(out.read)
                close(out.write)
                throw error
            }
            defer { close(out.read); close(err.read) }
            child = try state.starting(slot, label: label) {
                defer { close(out.write); close(err.write) }
                return try ChildProcess.spawn(plan.command, environment: ChildProcess.environment(adding: environment),
                                              stdin: input, stdout: out.write, stderr: err.write)
            }
            guard let child else {
                close(out.write); close(err.write)
                return   // stopping: the lease goes with the connection
            }
            let lost = Locked<String?>(nil)
            var heartbeat: JSONObject = ids
            if plan.explicitLeaseTtl { heartbeat["lease_ttl_secs"] = .int(plan.leaseTtl) }
            let beats = Repeater(every: max(0.2, Double(plan.leaseTtl) / 3)) { [daemon] in
                do {
                    try daemon.call("HeartbeatNode", .object(heartbeat))
                    return true
                } catch {
                    lost.withValue { $0 = "\(error)" }
                    child.signal(SIGTERM)
                    return false
                }
            }
            output.drain(stdout: out.read, stderr: err.read) { child.hasEnded }
            let status = child.wait()
            beats.stop()
            finish(label: label, ids: ids, status: status, output: output, lost: lost.withValue { $0 })
        } catch {
            state.fail(CLIFailure(error))
        }
    }

    private func finish(label: String, ids: JSONObject, status: ChildStatus, output: Capture, lost: String?) {
        state.slotDone(slot)   // no longer "running" on the progress line while the daemon is told
        if let lost, !state.isStopping {
            return state.finished(slot, .failed("lost the lease on node \(label) (\(lost)); its command was sent SIGTERM"))
        }
        if state.isStopping && status != .exited(0) {
            return state.finished(slot, .interrupted)   // the node is taken again once our connection closes
        }
        var params = ids
        if status == .exited(0) {
            params["result_payload"] = output.result
            do {
                try daemon.call("CompleteNode", .object(params))
                state.finished(slot, .completed)
            } catch {
                state.finished(slot, .failed("node \(label) ran, but completing it was refused: \(CLIFailure(error).message)"))
            }
            return
        }
        var payload: JSONObject = members(["exit_code": .int(Int64(status.exitStatus)), "stderr": .string(output.stderrText)])
        if case .signaled(let signal) = status { payload["signal"] = .int(Int64(signal)) }
        params["error_payload"] = .object(payload)
        let lastLine = output.stderrText.split(separator: "\n").last.map { ": " + shortened(String($0), to: 200) } ?? ""
        do {
            try daemon.call("FailNode", .object(params))
            state.finished(slot, .failed("node \(label) failed with exit status \(status.exitStatus)\(lastLine)"))
        } catch {
            state.finished(slot, .failed("node \(label) failed (exit status \(status.exitStatus)), and failing it was refused: \(CLIFailure(error).message)"))
        }
    }

    /// A file holding `text`, read from its start: the command's stdin. A file rather than a
    /// pipe, so a large context never blocks on a command that does not read it.
    static func readableFile(_ text: String) throws -> Int32 {
        let fd = agentd_memfd("agentd-node")
        guard fd >= 0 else { throw CLIFailure("memfd_create: \(String(cString: strerror(errno)))") }
        var bytes = Array(text.utf8)
        bytes.append(UInt8(ascii: "\n"))
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                close(fd)
                throw CLIFailure("writing the node's input: \(String(cString: strerror(errno)))")
            }
            written += n
        }
        lseek(fd, 0, SEEK_SET)
        return fd
    }

    static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard agentd_pipe_cloexec(&fds) == 0 else { throw CLIFailure("pipe: \(String(cString: strerror(errno)))") }
        return (fds[0], fds[1])
    }
}

/// A command's stdout (its first 256 KiB) and stderr (its last 4 KiB), read together until
/// both close, so that neither pipe fills up and blocks the command.
struct Capture {
    private(set) var stdout: [UInt8] = []
    private(set) var stdoutCut = false
    private var stderr: [UInt8] = []

    /// Reads both pipes until they close. A command that leaves a background process holding
    /// them open has ended all the same: once `childEnded()`, what comes within a second more
    /// is kept and the rest is not waited for.
    mutating func drain(stdout outFd: Int32, stderr errFd: Int32, childEnded: () -> Bool) {
        var fds = [pollfd(fd: outFd, events: Int16(POLLIN), revents: 0), pollfd(fd: errFd, events: Int16(POLLIN), revents: 0)]
        var chunk = [UInt8](repeating: 0, count: 65536)
        var endedAt: timespec? = nil
        while fds.contains(where: { $0.fd >= 0 }) {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            if let endedAt {
                if now.tv_sec - endedAt.tv_sec >= 2 || (now.tv_sec - endedAt.tv_sec == 1 && now.tv_nsec >= endedAt.tv_nsec) {
                    return
                }
            } else if childEnded() {
                endedAt = now
            }
            let ready = poll(&fds, 2, 100)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if ready == 0 { continue }
            for i in 0..<2 where fds[i].fd >= 0 && fds[i].revents != 0 {
                let n = chunk.withUnsafeMutableBytes { read(fds[i].fd, $0.baseAddress!, $0.count) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if n <= 0 {
                    fds[i].fd = -1   // closed: poll ignores negative descriptors
                    continue
                }
                if i == 0 {
                    let room = NodeRun.outputLimit - stdout.count
                    if n > room { stdoutCut = true }
                    stdout.append(contentsOf: chunk[0..<min(n, max(room, 0))])
                } else {
                    stderr.append(contentsOf: chunk[0..<n])
                    if stderr.count > 2 * NodeRun.stderrLimit { stderr.removeFirst(stderr.count - NodeRun.stderrLimit) }
                }
            }
        }
    }

    var stderrText: String { String(decoding: stderr.suffix(NodeRun.stderrLimit), as: UTF8.self) }

    /// The node's result: stdout's JSON value when it is JSON, else {"output": text}; kept
    /// within 256 KiB of JSON either way.
    var result: JSONValue {
        if !stdoutCut, let value = try? JSONValue.parse(stdout) { return value }
        let (text, cut) = Capture.bounded(String(decoding: stdout, as: UTF8.self), escapedBytes: NodeRun.outputLimit)
        var object: JSONObject = members(["output": .string(text)])
        if cut || stdoutCut { object["truncated"] = true }
        return .object(object)
    }

    /// The longest prefix of `text` whose JSON string form (escapes included) fits.
    static func bounded(_ text: String, escapedBytes limit: Int) -> (String, Bool) {
        var size = 2
        var end = text.unicodeScalars.startIndex
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x22, 0x5C, 0x08, 0x0C, 0x0A, 0x0D, 0x09: size += 2
            case 0..<0x20: size += 6
            default: size += UTF8.width(scalar)
            }
            if size > limit { return (String(text.unicodeScalars[..<end]), true) }
            end = text.unicodeScalars.index(after: end)
        }
        return (text, false)
    }
}
