/// agentd's JSON lines. Requests are built from constant byte runs; answers are read by looking for
/// the few keys that matter (`"lease_id":"`, `"node_id":"`, `"result":null}`, `"error":`), without a
/// JSON parser. Every request carries `"id":1` (a client would send an id; its value costs nothing).
final class AgentdDriver: LockDriver, LeaseDriver {
    private let lockTTLSeconds: Int

    init(lockTTLSeconds: Int) {
        self.lockTTLSeconds = lockTTLSeconds
        acquireLockTail = bytes("\",\"ttl_secs\":\(lockTTLSeconds)}}\n")
    }

    func continuationLines(after line: UnsafeRawBufferPointer) -> Int { 0 }

    // MARK: Locks

    private let acquireLockHead = bytes(#"{"id":1,"method":"AcquireResourceLock","params":{"resource_key":""#)
    private let ownerField = bytes(#"","owner":""#)
    private let acquireLockTail: [UInt8]
    private let releaseLockHead = bytes(#"{"id":1,"method":"ReleaseResourceLock","params":{"resource_key":""#)
    private let leaseField = bytes(#"","lease_id":""#)
    private let closeStringAndParams = bytes("\"}}\n")

    func prepare(_ client: SyncClient) {}

    @inline(__always)
    func appendAcquire(key: [UInt8], owner: [UInt8], to output: inout [UInt8]) {
        output.append(contentsOf: acquireLockHead)
        output.append(contentsOf: key)
        output.append(contentsOf: ownerField)
        output.append(contentsOf: owner)
        output.append(contentsOf: acquireLockTail)
    }

    @inline(__always)
    func readAcquire(_ answer: UnsafeRawBufferPointer, owner: [UInt8], token: inout [UInt8]) -> Outcome {
        if isAgentdError(answer) { return .error }
        if answer.hasSuffix(AgentdAnswer.nullResult) { return .empty }
        token.removeAll(keepingCapacity: true)
        return answer.appendStringValue(after: AgentdAnswer.leaseID, to: &token) ? .ok : .error
    }

    @inline(__always)
    func appendRelease(key: [UInt8], token: [UInt8], to output: inout [UInt8]) {
        output.append(contentsOf: releaseLockHead)
        output.append(contentsOf: key)
        output.append(contentsOf: leaseField)
        output.append(contentsOf: token)
        output.append(contentsOf: closeStringAndParams)
    }

    @inline(__always)
    func readRelease(_ answer: UnsafeRawBufferPointer) -> Outcome {
        isAgentdError(answer) ? .error : .ok
    }

    // MARK: Leases

    private let addHead = bytes(#"{"id":1,"method":"AddNodes","params":{"task_id":""#)
    private let addTail = bytes("\",\"nodes\":[{}]}}\n")
    private let acquireNodeHead = bytes(#"{"id":1,"method":"AcquireNextNode","params":{"task_id":""#)
    private let leaseOwnerField = bytes(#"","lease_owner":""#)
    private let heartbeatHead = bytes(#"{"id":1,"method":"HeartbeatNode","params":{"task_id":""#)
    private let completeHead = bytes(#"{"id":1,"method":"CompleteNode","params":{"task_id":""#)
    private let nodeField = bytes(#"","node_id":""#)
    private let completeTail = bytes("\",\"result_payload\":{}}}\n")

    func makeQueues(count: Int, _ client: SyncClient) -> [[UInt8]] {
        (0..<count).map { index in
            let answer = client.call(json: #"{"id":1,"method":"RegisterTask","params":{"goal":"bench leases \#(index)"}}"#)
            guard let task = answer.stringValue(after: #""task_id":""#) else { fail("RegisterTask: \(answer.text)") }
            return bytes(task)
        }
    }

    func appendConnectionSetUp(queue: [UInt8], to output: inout [UInt8]) -> Int { 0 }

    @inline(__always)
    func appendAdd(queue: [UInt8], to output: inout [UInt8]) {
        output.append(contentsOf: addHead)
        output.append(contentsOf: queue)
        output.append(contentsOf: addTail)
    }

    @inline(__always)
    func readAdd(_ answer: UnsafeRawBufferPointer) -> Outcome { isAgentdError(answer) ? .error : .ok }

    @inline(__always)
    func appendAcquire(queue: [UInt8], owner: [UInt8], to output: inout [UInt8]) {
        output.append(contentsOf: acquireNodeHead)
        output.append(contentsOf: queue)
        output.append(contentsOf: leaseOwnerField)
        output.append(contentsOf: owner)
        output.append(contentsOf: closeStringAndParams)
    }

    /// The handle is the node id followed by the lease id (36 bytes each). The answer's top-level
    /// node_id and lease_id come before its context, so the first occurrences are the right ones.
    @inline(__always)
    func readAcquire(_ answer: UnsafeRawBufferPointer, handle: inout [UInt8]) -> Outcome {
        if isAgentdError(answer) { return .error }
        if answer.hasSuffix(AgentdAnswer.nullResult) { return .empty }
        handle.removeAll(keepingCapacity: true)
        guard answer.appendStringValue(after: AgentdAnswer.nodeID, to: &handle),
              answer.appendStringValue(after: AgentdAnswer.leaseID, to: &handle),
              handle.count == 72 else { return .error }
        return .ok
    }

    @inline(__always)
    func appendHeartbeat(queue: [UInt8], handle: [UInt8], to output: inout [UInt8]) {
        output.append(contentsOf: heartbeatHead)
        appendLeaseFields(queue: queue, handle: handle, to: &output)
        output.append(contentsOf: closeStringAndParams)
    }

    @inline(__always)
    func readHeartbeat(_ answer: UnsafeRawBufferPointer) -> Outcome { isAgentdError(answer) ? .error : .ok }

    @inline(__always)
    func appendComplete(queue: [UInt8], handle: [UInt8], to output: inout [UInt8]) {
        output.append(contentsOf: completeHead)
        appendLeaseFields(queue: queue, handle: handle, to: &output)
        output.append(contentsOf: completeTail)
    }

    @inline(__always)
    func readComplete(_ answer: UnsafeRawBufferPointer) -> Outcome { isAgentdError(answer) ? .error : .ok }

    /// `TASK","node_id":"NODE","lease_id":"LEASE` (the opening and closing quotes are the caller's).
    @inline(__always)
    func appendLeaseFields(queue: [UInt8], handle: [UInt8], to output: inout [UInt8]) {
        output.append(contentsOf: queue)
        output.append(contentsOf: nodeField)
        output.append(contentsOf: handle[0..<36])
        output.append(contentsOf: leaseField)
        output.append(contentsOf: handle[36..<72])
    }
}

/// Keys searched for in agentd's answers.
enum AgentdAnswer {
    static let nullResult = bytes(#""result":null}"#)
    static let leaseID = bytes(#""lease_id":""#)
    static let nodeID = bytes(#""node_id":""#)
    static let taskID = bytes(#""task_id":""#)
    static let error = bytes(#""error":"#)
}

/// An error answer has `"error":` among its first bytes (after an id we chose to keep short);
/// a result never does there.
@inline(__always)
func isAgentdError(_ answer: UnsafeRawBufferPointer) -> Bool {
    let head = UnsafeRawBufferPointer(rebasing: answer[0..<min(answer.count, 48)])
    return head.find(AgentdAnswer.error) != nil
}

extension AgentdDriver {
    /// Authenticate, the first request on a tls:// connection; its answer must name the agent.
    static func authentication(token: String) -> Greeting {
        var escaped = ""
        for character in token.unicodeScalars {
            switch character {
            case "\"", "\\": escaped += "\\" + String(character)
            case "\u{0}"..."\u{1F}": escaped += "\\u00" + (character.value < 16 ? "0" : "") + String(character.value, radix: 16)
            default: escaped.unicodeScalars.append(character)
            }
        }
        return Greeting(request: bytes(#"{"id":0,"method":"Authenticate","params":{"token":""# + escaped + "\"}}\n"),
                        check: { answer in
            if isAgentdError(answer) || answer.find(bytes(#""agent":""#)) == nil {
                return "Authenticate refused: " + String(answer.text.prefix(300))
            }
            return nil
        })
    }
}
