import AgentdBase
import Glibc

/// One answer: the result, and its bytes exactly as the daemon wrote them (for `--json`).
public struct AgentdReply: Sendable {
    public let result: JSONValue
    public let resultText: String
}

/// A connection to the daemon's socket that stays open: the one client of the protocol that
/// the CLI, `agentd mcp`, the bench and the tests share.
///
/// Thread-safe and pipelined: any thread may `call` (it waits for its own answer) or `send`
/// (its completion runs on the reader thread); requests go out in the order they are made,
/// and answers come back in that order, as the protocol promises per connection. A parked
/// request (`wait_ms`) holds back the answers behind it but not their effect: a heartbeat sent
/// behind a waiting acquire is applied at once.
///
/// Leases and locks taken with `release_on_disconnect` live as long as this connection:
/// `close()` (or the process's death) frees them.
public final class AgentdConnection: @unchecked Sendable {
    public let endpoint: String
    private let fd: Int32
    private let monitor = Monitor()
    /// Held while a request is queued and written, so the queue's order is the order on the
    /// wire. Not `monitor`: a write blocked on a daemon that stopped reading (its output past
    /// the high-water mark) must not keep the reader from taking the answers that unblock it.
    private let writing = Monitor()
    /// Guards `fdClosed`: the reader closes `fd` once the connection has ended and no write is
    /// under way; `close()` shuts it down only before that.
    private let descriptor = Monitor()
    private var fdClosed = false
    private var pending: [(Result<AgentdReply, Error>) -> Void] = []
    private var pendingStart = 0
    private var failure: ConnectionError?
    private var nextId: Int64 = 1
    private var closeHandlers: [(ConnectionError) -> Void] = []
    /// For `tls://` endpoints (AgentdConnection+TLS.swift); nil on the Unix socket.
    private let tls: TLSClientSession?
    /// The agent a `tls://` connection authenticated as; nil on the Unix socket.
    public internal(set) var agentName: String?

    /// Connects to the socket at `socketPath`.
    public convenience init(socketPath: String) throws {
        self.init(connected: try AgentdConnection.connectUnix(socketPath), endpoint: socketPath, tls: nil)
    }

    /// Takes over a connected socket (and its TLS session) and starts reading answers.
    init(connected fd: Int32, endpoint: String, tls: TLSClientSession?) {
        self.endpoint = endpoint
        self.fd = fd
        self.tls = tls
        startThread { [self] in readAnswers() }
    }

    /// Connects to the socket the daemon would use with this environment
    /// (`AGENTD_SOCKET_PATH`, `AGENTD_HOME`, the `.env` file).
    public convenience init(environment: AgentdEnvironment = .current) throws {
        try self.init(socketPath: environment.socketPath)
    }

    /// Sends a request and waits for its answer. Throws `AgentdError` when the daemon answers
    /// an error, `ConnectionError` when there is no answer.
    @discardableResult
    public func call(_ method: String, _ params: JSONValue? = nil, timeout: Double? = nil) throws -> JSONValue {
        try callReply(method, params, timeout: timeout).result
    }

    public func callReply(_ method: String, _ params: JSONValue? = nil, timeout: Double? = nil) throws -> AgentdReply {
        final class Slot: @unchecked Sendable { var outcome: Result<AgentdReply, Error>? }
        let slot = Slot()
        send(method, params) { [monitor] outcome in
            monitor.locked { slot.outcome = outcome }
            monitor.broadcast()
        }
        let deadline = timeout.map { Monitor.now() + $0 }
        return try monitor.locked {
            guard monitor.wait(until: deadline, { slot.outcome != nil }), let outcome = slot.outcome else {
                throw ConnectionError.timedOut(seconds: timeout ?? 0)
            }
            return try outcome.get()
        }
    }

    /// Sends a request without waiting; `completion` runs on the reader thread with the answer.
    public func send(_ method: String, _ params: JSONValue? = nil,
                     completion: @escaping (Result<AgentdReply, Error>) -> Void) {
        var line: [UInt8] = []
        let failed: ConnectionError? = writing.locked {
            let failed: ConnectionError? = monitor.locked {
                if let failure { return failure }
                line.appendASCII("{\"id\":")
                line.appendJSONInt(nextId)
                nextId += 1
                line.appendASCII(",\"method\":")
                line.appendJSONString(method)
                if let params {
                    line.appendASCII(",\"params\":")
                    line.append(contentsOf: params.compactBytes())
                }
                line.appendASCII("}\n")
                // Queued and written under `writing`: the queue's order is the order on the wire.
                pending.append(completion)
                return nil
            }
            if failed != nil { return failed }
            // A failed write fails every waiting request, this one included.
            if let error = writeAll(line) { monitor.locked { fail(error) } }
            return nil
        }
        if let failed { completion(.failure(failed)) }
    }

    /// Runs once, when the connection ends for any reason (also at once if it already has).
    public func onClose(_ handler: @escaping (ConnectionError) -> Void) {
        let ended: ConnectionError? = monitor.locked {
            if failure == nil { closeHandlers.append(handler) }
            return failure
        }
        if let ended { handler(ended) }
    }

    public var isOpen: Bool { monitor.locked { failure == nil } }

    /// Closes the connection: the daemon releases what was bound to it, and requests still
    /// waiting for an answer fail with `ConnectionError.closed`.
    public func close() {
        // Once the connection has ended, the reader thread closes `fd` and its number may
        // already belong to another socket: shut down only while it has not.
        descriptor.locked {
            if !fdClosed { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    // MARK: - Inside

    private func writeAll(_ bytes: [UInt8]) -> ConnectionError? {
        if let tls { return tls.write(bytes) }
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return .closed("write: \(String(cString: strerror(errno)))") }
            sent += n
        }
        return nil
    }

    /// Call with the lock held. Every request still waiting fails; nothing more is sent.
    private func fail(_ error: ConnectionError) {
        guard failure == nil else { return }
        failure = error
        let waiting = pending[pendingStart...]
        pending = []
        pendingStart = 0
        let handlers = closeHandlers
        closeHandlers = []
        // The lock is held here, and completions take it themselves: they run on a thread of
        // their own.
        shutdown(fd, Int32(SHUT_RDWR))
        startThread {
            for completion in waiting { completion(.failure(error)) }
            for handler in handlers { handler(error) }
        }
    }

    private func readAnswers() {
        var buffer: [UInt8] = []
        // Bytes of `buffer` already known to hold no newline: a long answer arriving in many
        // reads is scanned once, not once per read.
        var scanned = 0
        var chunk = [UInt8](repeating: 0, count: 65536)
        var ending = ConnectionError.closed("the daemon closed the connection")
        reading: while true {
            let n = chunk.withUnsafeMutableBytes { tls?.read(into: $0) ?? read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { ending = .closed("read: \(String(cString: strerror(errno)))"); break }
            if n == 0 { break }
            buffer.append(contentsOf: chunk[0..<n])
            var start = 0
            while let newline = buffer[max(start, scanned)...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                if line.allSatisfy({ $0 == 32 || $0 == 13 }) { continue }
                let completion: ((Result<AgentdReply, Error>) -> Void)? = monitor.locked {
                    guard pendingStart < pending.count else { return nil }
                    let next = pending[pendingStart]
                    pendingStart += 1
                    if pendingStart > 1024 && pendingStart * 2 > pending.count {
                        pending.removeFirst(pendingStart)
                        pendingStart = 0
                    }
                    return next
                }
                guard let completion else {
                    ending = .malformedAnswer("an answer nobody asked for")
                    break reading
                }
                completion(AgentdConnection.decode(line))
            }
            buffer.removeFirst(start)
            scanned = buffer.count
        }
        monitor.locked { fail(ending) }
        // fail() shut the socket down, so a write under way ends soon; none starts after it.
        writing.locked {
            descriptor.locked {
                fdClosed = true
                Glibc.close(fd)
            }
        }
    }

    static func decode(_ line: [UInt8]) -> Result<AgentdReply, Error> {
        var tape = JSONTape()
        return line.withUnsafeBytes { raw -> Result<AgentdReply, Error> in
            do { try tape.parse(raw) } catch {
                return .failure(ConnectionError.malformedAnswer((error as? JSONError)?.message ?? "\(error)"))
            }
            let document = JSONDocument(tape: tape, input: raw)
            if let error = document.member(document.root, "error") {
                let code = document.member(error, "code").flatMap { document.int64($0) } ?? 0
                let message = document.member(error, "message").map { document.string($0) } ?? "unknown error"
                let reason = document.member(error, "data").flatMap { document.member($0, "reason") }
                    .flatMap { document.stringValue($0) }
                return .failure(AgentdError(code: code, message: message, reason: reason))
            }
            guard let result = document.member(document.root, "result") else {
                return .failure(ConnectionError.malformedAnswer("neither result nor error"))
            }
            return .success(AgentdReply(result: JSONValue(document, result),
                                        resultText: String(decoding: document.raw(result), as: UTF8.self)))
        }
    }

    private static func connectUnix(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ConnectionError.unreachable(endpoint: path, reason: String(cString: strerror(errno))) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw ConnectionError.unreachable(endpoint: path, reason: "the socket path is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw ConnectionError.unreachable(endpoint: path, reason: "\(reason) (is the daemon running?)")
        }
        return fd
    }
}
