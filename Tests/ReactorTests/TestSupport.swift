import Foundation
import Glibc
import XCTest
@testable import Reactor

// Helpers shared by the Reactor tests: socket paths, a loop driver with a watchdog, an echo server,
// a line-collecting client delegate, and blocking-socket clients for background threads.

private var socketPathCounter = 0

/// A fresh, short socket path under /tmp (sun_path holds only 107 bytes).
func temporarySocketPath() -> String {
    socketPathCounter += 1
    let path = "/tmp/rt-\(getpid())-\(socketPathCounter).sock"
    unlink(path)
    return path
}

/// Runs `loop` until it stops or runs out of work; fails the test (and stops) after `timeoutMs`.
func drive(_ loop: EventLoop, timeoutMs: UInt64 = 5000, file: StaticString = #filePath, line: UInt = #line) {
    let watchdog = Reactor.Timer(loop: loop)
    watchdog.keepsLoopAlive = false
    var expired = false
    watchdog.start(afterMs: timeoutMs) {
        expired = true
        loop.stop()
    }
    loop.run()
    watchdog.close()
    XCTAssertFalse(expired, "loop still busy after \(timeoutMs) ms", file: file, line: line)
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Echoes every line back, answers oversized lines with an error, flushes at the end of each turn.
final class EchoServer: ConnectionDelegate {
    let loop: EventLoop
    var listener: UnixListener!
    var open: [UInt64: Connection] = [:]
    var lines: [String] = []
    var oversizedCount = 0
    var eofCount = 0
    var closedCount = 0
    var outputHighWater: Int?
    /// Extra behaviour, run after a line was echoed.
    var onLine: ((Connection, String) -> Void)?
    var onClosed: ((Connection) -> Void)?
    /// Runs at the end of every turn, after the flush.
    var onTurn: (() -> Void)?
    /// Keeps the text of every line (off for the big tests).
    var recordsLines = true
    var lineCount = 0

    init(loop: EventLoop, path: String) throws {
        self.loop = loop
        listener = try UnixListener(loop: loop, path: path) { [unowned self] connection in
            connection.delegate = self
            if let mark = self.outputHighWater { connection.outputHighWater = mark }
            self.open[connection.id] = connection
        }
        loop.onEndOfTurn { [unowned self] in
            for connection in self.open.values { connection.flush() }
            self.onTurn?()
        }
    }

    var onlyConnection: Connection? { open.values.first }

    func connection(_ connection: Connection, didReceiveLine line: UnsafeRawBufferPointer) {
        lineCount += 1
        connection.output.append(contentsOf: line)
        connection.output.append(0x0A)
        if recordsLines || onLine != nil {
            let text = String(decoding: line, as: UTF8.self)
            if recordsLines { lines.append(text) }
            onLine?(connection, text)
        }
    }

    func connectionDidReceiveOversizedLine(_ connection: Connection) {
        oversizedCount += 1
        connection.output.append(contentsOf: bytes("ERR line too long\n"))
    }

    func connectionDidReachEOF(_ connection: Connection) {
        eofCount += 1
        connection.closeAfterFlush()
    }

    func connectionDidClose(_ connection: Connection) {
        closedCount += 1
        open.removeValue(forKey: connection.id)
        onClosed?(connection)
    }
}

/// Client-side delegate that records what it receives.
final class LineCollector: ConnectionDelegate {
    var lines: [String] = []
    var sawEOF = false
    var closedCount = 0
    var onLine: ((Connection, String) -> Void)?
    var onClose: (() -> Void)?

    func connection(_ connection: Connection, didReceiveLine line: UnsafeRawBufferPointer) {
        let text = String(decoding: line, as: UTF8.self)
        lines.append(text)
        onLine?(connection, text)
    }

    func connectionDidReachEOF(_ connection: Connection) {
        sawEOF = true
        connection.closeAfterFlush()
    }

    func connectionDidClose(_ connection: Connection) {
        closedCount += 1
        onClose?()
    }
}

/// Connects with UnixConnector and fails the test on error.
func connectClient(_ loop: EventLoop, _ path: String, _ collector: LineCollector,
                   _ ready: @escaping (Connection) -> Void) {
    UnixConnector.connect(loop: loop, path: path) { result in
        switch result {
        case .success(let connection):
            connection.delegate = collector
            ready(connection)
        case .failure(let error):
            XCTFail("connect failed: \(error)")
            loop.stop()
        }
    }
}

// MARK: - Blocking clients for background threads

/// A blocking Unix socket connected to `path`, or -1.
func blockingConnect(_ path: String) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return -1 }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
    let status = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    if status != 0 {
        close(fd)
        return -1
    }
    return fd
}

@discardableResult
func writeAll(_ fd: Int32, _ data: [UInt8]) -> Bool {
    var offset = 0
    while offset < data.count {
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress! + offset, data.count - offset) }
        if written < 0 {
            if errno == EINTR { continue }
            return false
        }
        offset += written
    }
    return true
}

/// Reads until EOF (or an error such as ECONNRESET, reported in `error`).
func readToEnd(_ fd: Int32) -> (data: [UInt8], error: Int32) {
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if count > 0 {
            data.append(contentsOf: chunk[0..<count])
        } else if count == 0 {
            return (data, 0)
        } else if errno != EINTR {
            return (data, errno)
        }
    }
}

/// A background thread the test can wait for.
final class BackgroundThread {
    private let finished = DispatchSemaphore(value: 0)

    init(_ body: @escaping () -> Void) {
        let thread = Thread { [finished] in
            body()
            finished.signal()
        }
        thread.start()
    }

    func join(file: StaticString = #filePath, line: UInt = #line) {
        if finished.wait(timeout: .now() + 5) == .timedOut {
            XCTFail("background thread did not finish", file: file, line: line)
        }
    }
}

/// A fresh loop and a temporary socket path per test, both cleaned up after it.
class SocketLoopTestCase: XCTestCase {
    var loop: EventLoop!
    var path: String!

    override func setUpWithError() throws {
        loop = try EventLoop()
        path = temporarySocketPath()
    }

    override func tearDown() {
        loop.close()
        unlink(path)
        loop = nil
    }
}
