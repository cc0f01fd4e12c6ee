import Glibc
import Reactor

/// Where the server listens: a Unix socket, or `tls://HOST:PORT` (the server's certificate checked
/// by `context`, a client TLSContext, against HOST).
enum Endpoint: CustomStringConvertible {
    case unix(path: String)
    case tls(host: String, port: Int, context: TLSContext)

    var description: String {
        switch self {
        case .unix(let path): return path
        case .tls(let host, let port, _): return "tls://" + (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
        }
    }
}

/// A request every connection sends first, before any traffic (e.g. agentd's Authenticate on
/// tls://), and the check of its one answer line: nil when the answer is what was hoped for, else
/// what is wrong with it.
struct Greeting {
    let request: [UInt8]
    let check: (UnsafeRawBufferPointer) -> String?
}

/// The one event loop of the bench and the server it talks to. Output of every connection leaves in
/// one write per loop turn (the end-of-turn hook flushes the links that asked for it), as a client
/// library batching its requests would.
final class Harness {
    let loop: EventLoop
    let endpoint: Endpoint
    /// Sent first on every connection connectAll opens, and its answer checked.
    let greeting: Greeting?
    private var pendingFlush: [Link] = []

    init(endpoint: Endpoint, greeting: Greeting? = nil) {
        do {
            loop = try EventLoop()
        } catch {
            fail("cannot create the event loop: \(error)")
        }
        self.endpoint = endpoint
        self.greeting = greeting
        loop.onEndOfTurn { [unowned self] in self.flushPending() }
    }

    convenience init(socketPath: String) {
        self.init(endpoint: .unix(path: socketPath))
    }

    /// Flushes `link` at the end of this loop turn. For use inside loop callbacks.
    @inline(__always)
    func scheduleFlush(_ link: Link) {
        if link.flushScheduled { return }
        link.flushScheduled = true
        pendingFlush.append(link)
    }

    private func flushPending() {
        if pendingFlush.isEmpty { return }
        for link in pendingFlush {
            link.flushScheduled = false
            link.connection.flush()
        }
        pendingFlush.removeAll(keepingCapacity: true)
    }

    private lazy var watchdog = Reactor.Timer(loop: loop)
    private var watchdogFired = false

    /// Runs the loop until something calls `loop.stop()`, or `timeoutSeconds` pass (then returns false).
    @discardableResult
    func run(timeoutSeconds: Double) -> Bool {
        watchdogFired = false
        watchdog.start(afterMs: UInt64(timeoutSeconds * 1000)) { [unowned self] in
            self.watchdogFired = true
            self.loop.stop()
        }
        loop.run()
        watchdog.stop()
        return !watchdogFired
    }

    /// Runs the loop for `milliseconds` (close callbacks, parked requests reaching the server), then returns.
    func settle(milliseconds: Double = 1) {
        run(timeoutSeconds: milliseconds / 1000)
    }
}

/// One connection seen by the bench: its delegate, with a flag for the end-of-turn flush.
/// Subclasses override `received` (and `closed` if a close matters).
class Link: ConnectionDelegate {
    let connection: Connection
    unowned let harness: Harness
    var flushScheduled = false

    init(connection: Connection, harness: Harness) {
        self.connection = connection
        self.harness = harness
        connection.delegate = self
    }

    final func connection(_ connection: Connection, didReceiveLine line: UnsafeRawBufferPointer) {
        received(line)
    }

    final func connectionDidClose(_ connection: Connection) {
        closed()
    }

    func received(_ line: UnsafeRawBufferPointer) {}
    func closed() {}

    /// Flushes at the end of the current loop turn (inside callbacks).
    @inline(__always)
    final func sendAtEndOfTurn() { harness.scheduleFlush(self) }

    /// Flushes now (from sequential code outside the loop's callbacks).
    final func sendNow() { connection.flush() }
}
