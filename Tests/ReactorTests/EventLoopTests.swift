import Foundation
import Glibc
import XCTest
@testable import Reactor

final class EventLoopTests: XCTestCase {
    private var loop: EventLoop!

    override func setUpWithError() throws {
        loop = try EventLoop()
    }

    override func tearDown() {
        loop.close()
        loop = nil
    }

    func testTimerFiresOnceAndRunReturns() {
        let timer = Reactor.Timer(loop: loop)
        var fired = 0
        let start = loop.nowMs
        timer.start(afterMs: 5) { fired += 1 }
        drive(loop)                                  // returns on its own: nothing left to do
        XCTAssertEqual(fired, 1)
        XCTAssertGreaterThanOrEqual(loop.nowMs, start + 5)
        XCTAssertFalse(timer.isActive)
    }

    func testStoppedTimerDoesNotFireAndRestartReArms() {
        let stopped = Reactor.Timer(loop: loop)
        var stoppedFired = false
        stopped.start(afterMs: 1) { stoppedFired = true }
        stopped.stop()

        let rearmed = Reactor.Timer(loop: loop)
        var calls: [String] = []
        rearmed.start(afterMs: 10_000) { calls.append("first") }
        rearmed.start(afterMs: 2) { calls.append("second") }

        let later = Reactor.Timer(loop: loop)
        later.start(afterMs: 20) {}
        drive(loop)
        XCTAssertFalse(stoppedFired)
        XCTAssertEqual(calls, ["second"])
    }

    /// Every line of one read is delivered before that turn's end-of-turn hook runs.
    func testEndOfTurnRunsAfterTheReadCallbacks() throws {
        let path = temporarySocketPath()
        defer { unlink(path) }
        let server = try EchoServer(loop: loop, path: path)
        var events: [String] = []
        server.onLine = { _, line in events.append(line) }
        server.onTurn = { if events.last != "turn" { events.append("turn") } }
        let collector = LineCollector()
        connectClient(loop, path, collector) { connection in
            connection.output = bytes("a\nb\nc\n")
            connection.flush()
        }
        collector.onLine = { [loop] _, _ in if collector.lines.count == 3 { loop!.stop() } }
        drive(loop)
        let firstLine = try XCTUnwrap(events.firstIndex(of: "a"))
        XCTAssertEqual(Array(events[firstLine...].prefix(4)), ["a", "b", "c", "turn"])
        XCTAssertEqual(collector.lines, ["a", "b", "c"])
    }

    func testEndOfTurnAndSignalsDoNotKeepTheLoopAlive() {
        var turns = 0
        loop.onEndOfTurn { turns += 1 }
        loop.onSignal(SIGUSR2) {}
        drive(loop)                                  // must return at once
        XCTAssertLessThanOrEqual(turns, 1)
    }

    func testSignalRunsItsHandlerOnTheLoop() {
        var handled = 0
        loop.onSignal(SIGUSR1) { [loop] in
            handled += 1
            loop!.stop()
        }
        let keepAlive = Reactor.Timer(loop: loop)
        keepAlive.start(afterMs: 4000) {}
        raise(SIGUSR1)
        drive(loop)
        XCTAssertEqual(handled, 1)
    }

    func testRunInBackgroundRunsWorkElsewhereAndDoneOnTheLoop() {
        let loopThread = pthread_self()
        var workThread: pthread_t?
        var doneOnLoopThread = false
        var order: [String] = []
        loop.runInBackground({
            workThread = pthread_self()
        }, then: {
            order.append("done")
            doneOnLoopThread = pthread_equal(pthread_self(), loopThread) != 0
        })
        drive(loop)                                  // the pending job keeps run() going
        XCTAssertEqual(order, ["done"])
        XCTAssertTrue(doneOnLoopThread)
        XCTAssertNotNil(workThread)
        if let workThread { XCTAssertEqual(pthread_equal(workThread, loopThread), 0) }
    }
}
