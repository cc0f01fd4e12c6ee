// Integration test support: a blocking Unix-socket client speaking one JSON object per line.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What one attempt to read a line gave.
enum ITReadOutcome: CustomStringConvertible {
    case line([UInt8])
    /// The peer closed its side; `pending` holds bytes after the last newline, if any.
    case eof(pending: [UInt8])
    case timeout
    case failure(errno: Int32)

    var description: String {
        switch self {
        case .line(let bytes): return "line \(String(decoding: bytes.prefix(500), as: UTF8.self))"
        case .eof(let pending): return pending.isEmpty ? "EOF" : "EOF after \(pending.count) unterminated bytes"
        case .timeout: return "read timeout"
        case .failure(let code): return "read error \(code) (\(String(cString: strerror(code))))"
        }
    }
}

/// A blocking client over a Unix stream socket. Requests are lines; each read takes one
/// response line, with a bounded wait.
final class ITLineClient {
    private(set) var fd: Int32
    let path: String
    /// How long a read waits for a line before giving up.
    var readTimeout: TimeInterval = 10
    private var buffer: [UInt8] = []
    private var start = 0
    private var nextID = 1

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close() }

    /// Connect once; nil with `errno` set when nothing listens there.
    static func tryConnect(_ path: String) -> ITLineClient? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            Glibc.close(fd)
            errno = ENAMETOOLONG
            return nil
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            let saved = errno
            Glibc.close(fd)
            errno = saved
            return nil
        }
        return ITLineClient(fd: fd, path: path)
    }

    static func connect(_ path: String) throws -> ITLineClient {
        guard let client = tryConnect(path) else {
            throw ITError("connect \(path): \(String(cString: strerror(errno)))")
        }
        return client
    }

    func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    /// Half-close: the daemon sees EOF after what was sent.
    func shutdownWrite() {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    // MARK: Writing

    /// Write every byte; 0 on success, else the errno that stopped it (EPIPE, ECONNRESET
    /// when the daemon has closed the connection).
    @discardableResult
    func writeAll(_ bytes: [UInt8]) -> Int32 {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += n
        }
        return 0
    }

    func send(_ bytes: [UInt8]) throws {
        let rc = writeAll(bytes)
        if rc != 0 { throw ITError("write to \(path) failed: \(String(cString: strerror(rc)))") }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Send one line (a newline is appended).
    func sendLine(_ text: String) throws { try send(Array((text + "\n").utf8)) }

    /// Build a request line. `id: nil` leaves the id out; `params: nil` leaves params out.
    static func requestLine(id: Any?, method: String, params: Any?) -> String {
        var request: [String: Any] = ["method": method]
        if let id { request["id"] = id }
        if let params { request["params"] = params }
        return itJSONText(request)
    }

    /// Take the next integer request id.
    func takeID() -> Int {
        defer { nextID += 1 }
        return nextID
    }

    // MARK: Reading

    /// Read one line (without its newline), waiting at most `timeout` (default `readTimeout`).
    func readLineOutcome(timeout: TimeInterval? = nil) -> ITReadOutcome {
        let deadline = Date().addingTimeInterval(timeout ?? readTimeout)
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                if start > 65_536 && start * 2 > buffer.count {
                    buffer.removeFirst(start)
                    start = 0
                }
                return .line(line)
            }
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return .timeout }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(min(remaining * 1000 + 1, 60_000)))
            if ready < 0 {
                if errno == EINTR { continue }
                return .failure(errno: errno)
            }
            if ready == 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return .failure(errno: errno)
            }
            if n == 0 {
                let pending = Array(buffer[start...])
                return .eof(pending: pending)
            }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// Read one line or throw (EOF, timeout, error).
    func readLine(timeout: TimeInterval? = nil) throws -> [UInt8] {
        switch readLineOutcome(timeout: timeout) {
        case .line(let bytes): return bytes
        case let other: throw ITError("expected a response line from \(path), got \(other)")
        }
    }

    /// Read and decode one response line; it must be a JSON object.
    func readResponse(timeout: TimeInterval? = nil) throws -> ITJSON {
        let line = try readLine(timeout: timeout)
        let json = try ITJSON.parse(line)
        guard json.object != nil else {
            throw ITError("response is not a JSON object: \(String(decoding: line.prefix(2000), as: UTF8.self))")
        }
        return json
    }

    /// True if the daemon has closed the connection: a read gives EOF (or ECONNRESET,
    /// which Linux reports when the daemon closed with our bytes still unread) with no
    /// further line before it.
    func readClosed(timeout: TimeInterval = 10) -> ITReadOutcome {
        readLineOutcome(timeout: timeout)
    }

    // MARK: Requests

    /// Send `{"id":N,"method":...,"params":...}` and return the whole answer envelope,
    /// after checking that it echoes N.
    func rawCall(_ method: String, _ params: Any? = nil) throws -> ITJSON {
        let id = takeID()
        let line = ITLineClient.requestLine(id: id, method: method, params: params)
        try sendLine(line)
        let response = try readResponse()
        guard response["id"].int == id else {
            throw ITError("request \(line) got an answer with another id: \(response)")
        }
        return response
    }

    /// Call a method and return its result (possibly JSON null); an error answer throws
    /// with the request and the error.
    func call(_ method: String, _ params: Any? = nil) throws -> ITJSON {
        let response = try rawCall(method, params)
        if response["error"].exists {
            throw ITError("\(method) \(itJSONText(params ?? NSNull())) answered error \(response["error"])")
        }
        guard response["result"].exists else {
            throw ITError("\(method) answer has no \"result\" key: \(response)")
        }
        return response["result"]
    }
}
