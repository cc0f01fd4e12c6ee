import Foundation
import Glibc
import XCTest
@testable import Reactor

final class BackpressureTests: XCTestCase {
    /// A client pipelines 4 MB of requests and reads nothing. The server must stop reading once its
    /// unsent answers pass the high-water mark (so its memory stays bounded) and must not read while
    /// paused; once the client reads, everything arrives, in order.
    func testClientThatNeverReadsPausesTheServer() throws {
        let loop = try EventLoop()
        let path = temporarySocketPath()
        defer { loop.close(); unlink(path) }

        let highWater = 64 * 1024
        let server = try EchoServer(loop: loop, path: path)
        server.recordsLines = false
        server.outputHighWater = highWater

        let lineLength = 100
        let lineCount = 40_000
        var request: [UInt8] = []
        request.reserveCapacity(lineLength * lineCount)
        for index in 0..<lineCount {
            let prefix = bytes(String(index))
            request += prefix
            request += [UInt8](repeating: 0x2E, count: lineLength - 1 - prefix.count)
            request.append(0x0A)
        }

        let startReading = DispatchSemaphore(value: 0)
        var writeSucceeded = false
        var received: (data: [UInt8], error: Int32) = ([], -1)
        let fd = blockingConnect(path)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let writer = BackgroundThread {
            writeSucceeded = writeAll(fd, request)
            shutdown(fd, Int32(SHUT_WR))
        }
        let reader = BackgroundThread {
            startReading.wait()
            received = readToEnd(fd)
        }

        var maxUnsent = 0
        var receivedAtPause: UInt64?
        var stayedPaused = false
        let check = Reactor.Timer(loop: loop)
        server.onLine = { connection, _ in
            maxUnsent = max(maxUnsent, connection.unsentByteCount)
        }
        server.onTurn = {
            guard let connection = server.onlyConnection else { return }
            maxUnsent = max(maxUnsent, connection.unsentByteCount)
            guard receivedAtPause == nil, connection.isReadingPaused else { return }
            // Paused: wait a little, check nothing more was read, then let the client read.
            receivedAtPause = connection.bytesReceived
            check.start(afterMs: 30) {
                stayedPaused = connection.isReadingPaused && connection.bytesReceived == receivedAtPause
                startReading.signal()
            }
        }
        server.onClosed = { _ in loop.stop() }
        drive(loop)
        writer.join()
        reader.join()
        close(fd)

        XCTAssertNotNil(receivedAtPause, "the server never paused reading")
        XCTAssertTrue(stayedPaused, "the server kept reading while paused")
        XCTAssertLessThan(receivedAtPause ?? UInt64.max, UInt64(request.count))
        XCTAssertLessThanOrEqual(maxUnsent, highWater + lineLength, "unsent output not bounded")
        XCTAssertTrue(writeSucceeded)
        XCTAssertEqual(received.error, 0)
        XCTAssertEqual(received.data.count, request.count)
        XCTAssertTrue(received.data == request, "answers differ from requests")
        XCTAssertEqual(server.lineCount, lineCount)
    }
}
