/// RESP to redis-server: a lock is `SET key owner NX PX ttl`, a release is a compare-and-delete Lua
/// script run by EVALSHA (loaded once with SCRIPT LOAD). The owner is the worker's unique name, so
/// it doubles as the release token.
final class RedisDriver: LockDriver {
    static let releaseScript = #"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end"#

    private let setTail: [UInt8]
    private var evalHead: [UInt8] = []

    init(lockTTLSeconds: Int) {
        let milliseconds = String(lockTTLSeconds * 1000)
        setTail = bytes("$2\r\nNX\r\n$2\r\nPX\r\n$\(milliseconds.utf8.count)\r\n\(milliseconds)\r\n")
    }

    /// A bulk string header (`$len`) announces one more line; everything else here is one line.
    func continuationLines(after line: UnsafeRawBufferPointer) -> Int {
        line.count > 1 && line[0] == UInt8(ascii: "$") && line[1] != UInt8(ascii: "-") ? 1 : 0
    }

    func prepare(_ client: SyncClient) {
        let script = bytes(RedisDriver.releaseScript)
        var request: [UInt8] = []
        request.append("*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$")
        request.appendDecimal(script.count)
        request.append("\r\n")
        request.append(contentsOf: script)
        request.append("\r\n")
        // A bulk string: its `$40` header, then the SHA1 on a line of its own.
        let answer = client.call(request, answerLines: 2)
        guard answer[0].first == UInt8(ascii: "$") else { fail("SCRIPT LOAD: \(answer[0].text)") }
        let sha = answer[1].prefix { $0 != UInt8(ascii: "\r") }
        guard sha.count == 40 else { fail("SCRIPT LOAD: unexpected digest \(Array(sha).text)") }
        evalHead = bytes("*5\r\n$7\r\nEVALSHA\r\n$40\r\n")
        evalHead.append(contentsOf: sha)
        evalHead.append("\r\n$1\r\n1\r\n")
    }

    @inline(__always)
    private func appendBulk(_ value: [UInt8], to output: inout [UInt8]) {
        output.append(UInt8(ascii: "$"))
        output.appendDecimal(value.count)
        output.append("\r\n")
        output.append(contentsOf: value)
        output.append("\r\n")
    }

    @inline(__always)
    func appendAcquire(key: [UInt8], owner: [UInt8], to output: inout [UInt8]) {
        output.append("*6\r\n$3\r\nSET\r\n")
        appendBulk(key, to: &output)
        appendBulk(owner, to: &output)
        output.append(contentsOf: setTail)
    }

    /// `+OK` granted; a null bulk (`$-1`, or `_` in RESP3) when the key is held.
    @inline(__always)
    func readAcquire(_ answer: UnsafeRawBufferPointer, owner: [UInt8], token: inout [UInt8]) -> Outcome {
        guard let first = answer.first else { return .error }
        switch first {
        case UInt8(ascii: "+"):
            token.removeAll(keepingCapacity: true)
            token.append(contentsOf: owner)
            return .ok
        case UInt8(ascii: "$"), UInt8(ascii: "_"): return .empty
        default: return .error
        }
    }

    @inline(__always)
    func appendRelease(key: [UInt8], token: [UInt8], to output: inout [UInt8]) {
        output.append(contentsOf: evalHead)
        appendBulk(key, to: &output)
        appendBulk(token, to: &output)
    }

    /// `:1` deleted; `:0` the lock was no longer ours (expired and taken).
    @inline(__always)
    func readRelease(_ answer: UnsafeRawBufferPointer) -> Outcome {
        guard answer.count >= 2, answer[0] == UInt8(ascii: ":") else { return .error }
        return answer[1] == UInt8(ascii: "1") ? .ok : .empty
    }
}
