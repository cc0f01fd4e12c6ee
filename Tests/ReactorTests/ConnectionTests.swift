import Foundation
import Glibc
import XCTest
@testable import Reactor

final class ConnectionTests: SocketLoopTestCase {
    /// Sends a message one byte per server read (the next byte leaves only after the server has
    /// received the previous one), so a line is split at every byte boundary.
    func testLinesSplitAtEveryByteBoundary() throws {
        let server = try EchoServer(loop: loop, path: path)
        let message = bytes("hello\nwörld\r\n\nlast one\n")
        let collector = LineCollector()
        var client: Connection?
        var sent = 0
        connectClient(loop, path, collector) { connection in
            client = connection
            connection.output.append(message[0])
            sent = 1
            connection.flush()
        }
        server.onTurn = {
            guard let client, let peer = server.onlyConnection, sent < message.count,
                  peer.bytesReceived == UInt64(sent) else { return }
            client.output.append(message[sent])
            sent += 1
            client.flush()
        }
        collector.onLine = { [loop] _, _ in
            if collector.lines.count == 4 { loop!.stop() }
        }
        drive(loop)
        XCTAssertEqual(sent, message.count)
        XCTAssertEqual(server.lines, ["hello", "wörld\r", "", "last one"])
        XCTAssertEqual(collector.lines, ["hello", "wörld\r", "", "last one"])
    }

    func testPipelinedLinesComeBackInOrder() throws {
        let server = try EchoServer(loop: loop, path: path)
        let expected = (0..<1000).map { "request \($0) " + String(repeating: "x", count: $0 % 37) }
        let collector = LineCollector()
        connectClient(loop, path, collector) { connection in
            for line in expected { connection.output.append(contentsOf: bytes(line + "\n")) }
            connection.flush()
        }
        collector.onLine = { [loop] _, _ in
            if collector.lines.count == expected.count { loop!.stop() }
        }
        drive(loop)
        XCTAssertEqual(collector.lines, expected)
        XCTAssertEqual(server.lines, expected)
    }

    /// A line of exactly maxLineBytes (with its "\n") is echoed; the next, one byte longer, is refused
    /// and the connection closes after the answer.
    func testOversizedLineIsRefusedAfterAnExactFit() throws {
        let server = try EchoServer(loop: loop, path: path)
        server.recordsLines = false
        let limit = Connection.defaultMaxLineBytes
        var payload = [UInt8](repeating: 0x61, count: limit - 1) + [0x0A]
        payload += [UInt8](repeating: 0x62, count: limit) + [0x0A]
        payload += bytes("never read\n")
        let collector = LineCollector()
        connectClient(loop, path, collector) { connection in
            connection.output = payload
            connection.flush()
        }
        var closed = 0
        server.onClosed = { [loop] _ in closed += 1; if closed == 2 { loop!.stop() } }
        collector.onClose = { [loop] in closed += 1; if closed == 2 { loop!.stop() } }
        drive(loop)
        XCTAssertEqual(server.lineCount, 1)
        XCTAssertEqual(server.oversizedCount, 1)
        XCTAssertEqual(server.closedCount, 1)
        XCTAssertEqual(collector.closedCount, 1)
        XCTAssertEqual(collector.lines.count, 2)
        XCTAssertEqual(collector.lines.first?.utf8.count, limit - 1)
        XCTAssertEqual(collector.lines.last, "ERR line too long")
    }

    /// The limit is enforced while the line is still arriving: no need to wait for its "\n".
    func testOversizedLineIsRefusedBeforeItsNewline() throws {
        let server = try EchoServer(loop: loop, path: path)
        let collector = LineCollector()
        connectClient(loop, path, collector) { connection in
            connection.output = bytes("fine\n") + [UInt8](repeating: 0x62, count: Connection.defaultMaxLineBytes)
            connection.flush()
        }
        collector.onClose = { [loop] in loop!.stop() }
        drive(loop)
        XCTAssertEqual(server.lines, ["fine"])
        XCTAssertEqual(server.oversizedCount, 1)
        XCTAssertEqual(collector.lines, ["fine", "ERR line too long"])
    }

    func testLastLineWithoutNewlineIsAnsweredAtEOF() throws {
        let server = try EchoServer(loop: loop, path: path)
        server.onClosed = { [loop] _ in loop!.stop() }
        var received: (data: [UInt8], error: Int32) = ([], -1)
        let client = BackgroundThread { [path] in
            let fd = blockingConnect(path!)
            guard fd >= 0 else { return }
            writeAll(fd, bytes("first\nlast without newline"))
            shutdown(fd, Int32(SHUT_WR))
            received = readToEnd(fd)
            close(fd)
        }
        drive(loop)
        client.join()
        XCTAssertEqual(String(decoding: received.data, as: UTF8.self), "first\nlast without newline\n")
        XCTAssertEqual(received.error, 0)
        XCTAssertEqual(server.eofCount, 1)
    }

    /// A client that shuts down its writing side still gets every answer, then EOF.
    func testHalfClosedClientStillGetsItsAnswers() throws {
        let server = try EchoServer(loop: loop, path: path)
        server.recordsLines = false
        server.onClosed = { [loop] _ in loop!.stop() }
        let request = (0..<5000).map { "line \($0)\n" }.joined()
        var received: (data: [UInt8], error: Int32) = ([], -1)
        let client = BackgroundThread { [path] in
            let fd = blockingConnect(path!)
            guard fd >= 0 else { return }
            writeAll(fd, bytes(request))
            shutdown(fd, Int32(SHUT_WR))
            received = readToEnd(fd)
            close(fd)
        }
        drive(loop)
        client.join()
        XCTAssertEqual(received.error, 0)
        XCTAssertEqual(String(decoding: received.data, as: UTF8.self), request)
        XCTAssertEqual(server.eofCount, 1)
        XCTAssertEqual(server.lineCount, 5000)
    }

    func testDelegateMayCloseInsideDidReceiveLine() throws {
        let server = try EchoServer(loop: loop, path: path)
        server.onLine = { connection, line in
            if line == "b" { connection.close() }
        }
        let collector = LineCollector()
        connectClient(loop, path, collector) { connection in
            connection.output = bytes("a\nb\nc\nd\n")
            connection.flush()
        }
        var closed = 0
        server.onClosed = { [loop] _ in closed += 1; if closed == 2 { loop!.stop() } }
        collector.onClose = { [loop] in closed += 1; if closed == 2 { loop!.stop() } }
        drive(loop)
        XCTAssertEqual(server.lines, ["a", "b"])
        XCTAssertEqual(server.closedCount, 1)
        XCTAssertEqual(collector.lines, [], "close() drops pending output")
        XCTAssertEqual(collector.closedCount, 1)
    }

    /// Pausing inside didReceiveLine holds back the rest of that read; resuming delivers it, in order,
    /// in a later turn, and its answers are flushed without waiting for more input.
    func testPauseInsideALineHoldsTheRestUntilResume() throws {
        let server = try EchoServer(loop: loop, path: path)
        let resumeTimer = Reactor.Timer(loop: loop)
        var events: [String] = []
        server.onLine = { connection, line in
            events.append(line)
            if line == "pause" {
                connection.pauseReading()
                XCTAssertTrue(connection.isReadingPaused)
                resumeTimer.start(afterMs: 5) {
                    events.append("resumed")
                    connection.resumeReading()
                    events.append("resume returned")
                }
            }
        }
        let collector = LineCollector()
        connectClient(loop, path, collector) { connection in
            connection.output = bytes("1\npause\n2\n3\n")
            connection.flush()
        }
        collector.onLine = { [loop] _, _ in if collector.lines.count == 4 { loop!.stop() } }
        drive(loop)
        XCTAssertEqual(events, ["1", "pause", "resumed", "resume returned", "2", "3"])
        XCTAssertEqual(collector.lines, ["1", "pause", "2", "3"])
    }

    /// A peer that vanishes while answers are being written: the connection closes exactly once.
    func testPeerResetClosesExactlyOnce() throws {
        let server = try EchoServer(loop: loop, path: path)
        server.recordsLines = false
        server.onClosed = { [loop] _ in loop!.stop() }
        let client = BackgroundThread { [path] in
            let fd = blockingConnect(path!)
            guard fd >= 0 else { return }
            writeAll(fd, bytes(String(repeating: "some request that is echoed\n", count: 20000)))
            close(fd)
        }
        drive(loop)
        client.join()
        XCTAssertEqual(server.closedCount, 1)
        XCTAssertTrue(server.open.isEmpty)
    }

    func testConnectorReportsMissingAndStaleSockets() throws {
        var results: [ReactorError] = []
        UnixConnector.connect(loop: loop, path: path) { result in
            if case .failure(let error) = result { results.append(error) }
        }
        // A socket file nobody listens on.
        let stale = temporarySocketPath()
        defer { unlink(stale) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(stale.utf8)) }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        close(fd)
        UnixConnector.connect(loop: loop, path: stale) { result in
            if case .failure(let error) = result { results.append(error) }
        }
        UnixConnector.connect(loop: loop, path: "/tmp/" + String(repeating: "x", count: 120)) { result in
            if case .failure(let error) = result { results.append(error) }
        }
        drive(loop)
        XCTAssertEqual(results.count, 3)
        XCTAssertTrue(results.contains(.system("connect", ENOENT)), "\(results)")
        XCTAssertTrue(results.contains(.system("connect", ECONNREFUSED)), "\(results)")
        XCTAssertTrue(results.contains { if case .pathTooLong = $0 { return true } else { return false } })
    }

    /// EventLoop.close() closes what the caller left open, and delegates hear about it.
    func testLoopCloseClosesLeftoverConnections() throws {
        let server = try EchoServer(loop: loop, path: path)
        let collector = LineCollector()
        connectClient(loop, path, collector) { connection in
            connection.output = bytes("ping\n")
            connection.flush()
        }
        collector.onLine = { [loop] _, _ in loop!.stop() }
        let idleTimer = Reactor.Timer(loop: loop)
        idleTimer.start(afterMs: 60_000) {}
        drive(loop)
        XCTAssertEqual(collector.lines, ["ping"])
        loop.close()
        XCTAssertEqual(server.closedCount, 1)
        XCTAssertEqual(collector.closedCount, 1)
        XCTAssertTrue(idleTimer.isClosed)
    }
}
