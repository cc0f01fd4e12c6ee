import CUV
import Glibc
import Synchronization

private let connectionIDs = Atomic<UInt64>(0)

/// One connected stream socket (Unix, accepted by a UnixListener or made by UnixConnector; or TCP,
/// accepted by a TCPListener or made by TCPConnector, always with TLS), framed into lines on input and buffered on output.
/// Input handling is in Connection+Reading.swift, output in Connection+Writing.swift, the TLS layer
/// between the socket and both in Connection+TLS.swift.
///
/// Lifetime: the open libuv handle holds a retain on the Connection until its close callback, so
/// callers need not keep a reference; after `connectionDidClose` the object is inert.
///
/// A connection is used on its loop's one thread only, so its stored properties opt out of the
/// dynamic exclusivity checks one by one (`@exclusivity(unchecked)`): a library product cannot
/// take the `-enforce-exclusivity=unchecked` flag the daemon's own targets build with, and
/// these properties are touched on every read and write.
public final class Connection {
    /// The longest line a connection accepts unless its listener says otherwise, counting its "\n".
    public static let defaultMaxLineBytes = 1_048_576

    public weak var delegate: ConnectionDelegate?
    /// Unique per process, rising.
    public let id: UInt64
    /// For the owner's per-connection state.
    @exclusivity(unchecked) public var userData: AnyObject?

    /// Answers are appended here during a loop turn; nothing is written until `flush()`.
    /// Only append (flush() removes bytes from the front as they are handed to the kernel).
    @exclusivity(unchecked) public var output: [UInt8] = []

    /// When unsent bytes (`output` plus a write in flight) exceed this, reading pauses until they drain
    /// to half of it. This is the back-pressure for clients that pipeline but never read.
    @exclusivity(unchecked) public var outputHighWater: Int = 4 * 1024 * 1024

    @exclusivity(unchecked) public internal(set) var isClosed = false
    /// Bytes received from the peer so far.
    @exclusivity(unchecked) public internal(set) var bytesReceived: UInt64 = 0
    /// How many times reading was paused because unsent output passed `outputHighWater`.
    @exclusivity(unchecked) public internal(set) var backpressurePauseCount = 0

    let loop: EventLoop
    /// A uv_pipe_t or a uv_tcp_t, allocated by whoever accepted it; freed here after close.
    let stream: UnsafeMutablePointer<uv_stream_t>
    let framer: LineFramer

    // Reading state. Reading is on exactly when none of the reasons to be off holds (updateReading).
    @exclusivity(unchecked) var isReading = false
    @exclusivity(unchecked) var pausedByOwner = false
    @exclusivity(unchecked) var pausedForBackpressure = false
    @exclusivity(unchecked) var closingAfterFlush = false
    @exclusivity(unchecked) var sawEOF = false
    @exclusivity(unchecked) var drainScheduled = false

    // Writing state: at most one uv_write in flight; its bytes live in `inFlight` until the callback.
    let writeRequest: UnsafeMutablePointer<uv_write_t>
    @exclusivity(unchecked) var writeInFlight = false
    @exclusivity(unchecked) var inFlight: UnsafeMutableRawPointer?
    @exclusivity(unchecked) var inFlightCapacity = 0
    @exclusivity(unchecked) var inFlightCount = 0
    /// How many leading bytes of `output` flush() has released; bytes appended later wait for the
    /// next flush(), even if a write completes in between (the owner may not have committed them yet).
    @exclusivity(unchecked) var flushedPrefix = 0

    /// The TLS layer, for TCP connections (either side): `output` then holds plaintext and
    /// `sealed` the records made from it at flush(), which are what the socket writes.
    @exclusivity(unchecked) var tls: TLSSession?
    @exclusivity(unchecked) var sealed: [UInt8] = []
    /// The TLS session may hold plaintext not yet handed to the framer (delivery stopped mid-read).
    @exclusivity(unchecked) var tlsInputPending = false
    @exclusivity(unchecked) var sentCloseNotify = false
    /// Run after `connectionDidClose`, for the listener's count of its connections (and for
    /// TCPConnector while the handshake is under way).
    @exclusivity(unchecked) var onClosed: (() -> Void)?
    /// Run once, when the TLS handshake completes (TCPConnector hands the connection over then).
    @exclusivity(unchecked) var onTLSHandshake: (() -> Void)?
    /// Why TLS failed (e.g. the server's certificate is not trusted); nil while it has not.
    @exclusivity(unchecked) public internal(set) var tlsFailure: String?

    /// Takes over an initialized, connected pipe handle. Reading starts with `start()`, after the
    /// owner has had a chance to set the delegate.
    convenience init(loop: EventLoop, pipe: UnsafeMutablePointer<uv_pipe_t>,
                     maxLineBytes: Int = Connection.defaultMaxLineBytes) {
        self.init(loop: loop, stream: asStream(pipe), maxLineBytes: maxLineBytes)
    }

    /// Takes over an initialized, connected stream handle (pipe or TCP).
    init(loop: EventLoop, stream: UnsafeMutablePointer<uv_stream_t>, maxLineBytes: Int = Connection.defaultMaxLineBytes) {
        framer = LineFramer(maxLineBytes: maxLineBytes)
        self.loop = loop
        self.stream = stream
        id = connectionIDs.wrappingAdd(1, ordering: .relaxed).newValue
        writeRequest = .allocate(capacity: 1)
        stream.pointee.data = Unmanaged.passRetained(self).toOpaque()
        writeRequest.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        loop.track(self)
    }

    func start() {
        updateReading()
    }

    /// Unsent bytes: `output`, TLS records not yet written, and what a write in flight still holds.
    public var unsentByteCount: Int { output.count + sealed.count + inFlightCount }

    /// True for a connection that speaks TLS (a TCP connection, either side).
    public var isTLS: Bool { tls != nil }

    /// True while reading is paused, by the owner or by back-pressure.
    public var isReadingPaused: Bool { pausedByOwner || pausedForBackpressure }

    public func pauseReading() {
        guard !isClosed else { return }
        pausedByOwner = true
        updateReading()
    }

    /// Lines that arrived before the pause and were not yet delivered are delivered in a coming loop
    /// turn, never from inside this call.
    public func resumeReading() {
        guard !isClosed else { return }
        pausedByOwner = false
        updateReading()
    }

    /// Stops reading and closes once all output is written. Does not flush by itself: pending
    /// `output` goes out at the next `flush()`. If nothing is pending, closes now.
    public func closeAfterFlush() {
        guard !isClosed else { return }
        closingAfterFlush = true
        updateReading()
        closeIfFlushed()
    }

    /// Closes now; pending output is dropped. `connectionDidClose` follows from the close callback.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        if isReading {
            uv_read_stop(stream)
            isReading = false
        }
        output = []
        sealed = []
        flushedPrefix = 0
        uv_close(asHandle(stream), connectionClosed)
    }

    func closeIfFlushed() {
        if closingAfterFlush && !isClosed && !writeInFlight && output.isEmpty && sealed.isEmpty {
            // A TLS peer is told the stream ends here (close_notify), after the last answer.
            if tls != nil && !sentCloseNotify {
                sentCloseNotify = true
                if sealCloseNotify() { return }    // closes once that record is written
            }
            close()
        }
    }

    /// Runs from libuv's close callback; a write still in flight has been cancelled before this.
    fileprivate func didClose() {
        UnsafeMutableRawPointer(stream).deallocate()
        writeRequest.deallocate()
        tls = nil
        onTLSHandshake = nil
        inFlight?.deallocate()
        inFlight = nil
        inFlightCapacity = 0
        inFlightCount = 0
        framer.reset()
        loop.untrack(self)
        delegate?.connectionDidClose(self)
        onClosed?()
        onClosed = nil
        // Close callbacks run after this turn's end-of-turn hook: whatever the delegate changed
        // must not wait for unrelated I/O to be committed and flushed.
        loop.requestPromptEndOfTurn()
    }
}

extension Connection: LoopResource {
    func closeForLoopShutdown() { close() }
}

private let connectionClosed: uv_close_cb = { handle in
    let owner = Unmanaged<Connection>.fromOpaque(handle!.pointee.data)
    owner.takeUnretainedValue().didClose()
    owner.release()
}
