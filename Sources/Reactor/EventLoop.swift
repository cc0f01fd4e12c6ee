import CUV
import Glibc

/// One libuv loop, driven by one thread. Every Reactor object belongs to exactly one EventLoop and
/// may only be touched from the thread that calls `run()` (the only exception is the `work` closure of
/// `runInBackground`, which runs on libuv's thread pool).
public final class EventLoop {
    /// The loop's own uv_loop_t (not uv_default_loop), for callers that need plain libuv calls.
    public let raw: UnsafeMutablePointer<uv_loop_t>

    /// Shared by every connection of this loop. libuv asks for a buffer right before each read(2) and
    /// the bytes are framed synchronously inside the read callback (a partial tail is copied out), so
    /// nothing refers to this memory once the callback returns.
    let readBuffer: UnsafeMutableRawPointer
    static let readBufferSize = 64 * 1024

    private var endOfTurnBodies: [() -> Void] = []
    private var endOfTurnHandle: UnsafeMutablePointer<uv_check_t>?

    // An idle handle makes libuv poll with a zero timeout. It is active only while connections have
    // stashed lines to deliver, or for one turn after a callback that ran outside the poll phase
    // (timers), so that the end-of-turn hook runs promptly instead of after the next I/O.
    private var promptTurnHandle: UnsafeMutablePointer<uv_idle_t>?
    private var promptTurnActive = false
    private var promptTurnRequested = false
    private var pendingDrains: [Connection] = []

    var signalWatchers: [SignalWatcher] = []
    private var openResources: [ObjectIdentifier: LoopResource] = [:]
    private var isRunning = false
    public private(set) var isClosed = false

    public init() throws {
        // A peer that disappears must surface as EPIPE on write, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        raw = .allocate(capacity: 1)
        let status = uv_loop_init(raw)
        if status != 0 {
            raw.deallocate()
            throw ReactorError.uv("uv_loop_init", status)
        }
        readBuffer = .allocate(byteCount: EventLoop.readBufferSize, alignment: 16)
        raw.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        // Every open handle's owner keeps the loop alive, so reaching deinit means none is left.
        if !isClosed { close() }
    }

    /// Runs until `stop()` or until nothing that keeps the loop alive is left
    /// (signal handlers and the end-of-turn hook do not count).
    public func run() {
        precondition(!isClosed, "EventLoop.run() after close()")
        isRunning = true
        defer { isRunning = false }
        uv_run(raw, UV_RUN_DEFAULT)
    }

    /// Makes `run()` return after the current turn.
    public func stop() {
        uv_stop(raw)
    }

    /// Monotonic milliseconds, cached by libuv at the start of the loop turn.
    public var nowMs: UInt64 { uv_now(raw) }

    public func updateTime() {
        uv_update_time(raw)
    }

    /// Runs `body` at the end of every loop turn, after all I/O callbacks of that turn (a uv_check
    /// handle). Bodies run in registration order. The hook does not keep the loop alive.
    /// libuv may block in poll before a turn ends, so output appended from a poll-less turn is flushed
    /// when the next I/O arrives; the Reactor's own timers and line drains avoid that (see promptTurn).
    public func onEndOfTurn(_ body: @escaping () -> Void) {
        precondition(!isClosed, "EventLoop.onEndOfTurn after close()")
        endOfTurnBodies.append(body)
        if endOfTurnHandle != nil { return }
        let handle = UnsafeMutablePointer<uv_check_t>.allocate(capacity: 1)
        uv_check_init(raw, handle)
        handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_check_start(handle, endOfTurnFired)
        uv_unref(asHandle(handle))
        endOfTurnHandle = handle
    }

    fileprivate func runEndOfTurn() {
        for body in endOfTurnBodies { body() }
    }

    /// Closes every handle still open (connections, listeners, timers, signal handlers, and any handle
    /// the caller created through `raw`), lets their close callbacks run, and closes the loop.
    /// Call after `run()` has returned.
    public func close() {
        guard !isClosed else { return }
        precondition(!isRunning, "EventLoop.close() must be called after run() returns")
        isClosed = true

        for resource in Array(openResources.values) { resource.closeForLoopShutdown() }
        for watcher in signalWatchers { watcher.close() }
        signalWatchers.removeAll()
        if let handle = endOfTurnHandle { uv_close(asHandle(handle), freeHandleOnClose) }
        if let handle = promptTurnHandle { uv_close(asHandle(handle), freeHandleOnClose) }
        endOfTurnHandle = nil
        promptTurnHandle = nil
        pendingDrains.removeAll()
        // Release the caller's closures: they often capture objects that capture this loop.
        endOfTurnBodies.removeAll()

        uv_walk(raw, closeForeignHandle, nil)
        uv_run(raw, UV_RUN_DEFAULT)          // runs the close callbacks (and any background `done`)
        if uv_loop_close(raw) == 0 {
            raw.deallocate()
        }
        // else: libuv still references the loop (a handle closed without our callbacks is still
        // pending); leaking it is safer than freeing memory libuv may touch.
        readBuffer.deallocate()
    }

    // MARK: - Registry used by close()

    func track(_ resource: LoopResource) {
        openResources[ObjectIdentifier(resource)] = resource
    }

    func untrack(_ resource: LoopResource) {
        openResources.removeValue(forKey: ObjectIdentifier(resource))
    }

    // MARK: - Prompt turns and stashed-line drains

    /// Delivers `connection`'s stashed lines from the idle phase of a coming turn (never re-entrantly
    /// from inside whatever call resumed the connection).
    func scheduleDrain(_ connection: Connection) {
        pendingDrains.append(connection)
        activatePromptTurn()
    }

    /// Keeps the next poll from blocking so that this turn's end-of-turn hook runs right away.
    func requestPromptEndOfTurn() {
        promptTurnRequested = true
        activatePromptTurn()
    }

    private func activatePromptTurn() {
        if promptTurnActive || isClosed { return }
        let handle: UnsafeMutablePointer<uv_idle_t>
        if let existing = promptTurnHandle {
            handle = existing
        } else {
            handle = .allocate(capacity: 1)
            uv_idle_init(raw, handle)
            handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            uv_unref(asHandle(handle))
            promptTurnHandle = handle
        }
        uv_idle_start(handle, promptTurnFired)
        promptTurnActive = true
    }

    fileprivate func runPromptTurn() {
        let hadWork = promptTurnRequested || !pendingDrains.isEmpty
        promptTurnRequested = false
        if !pendingDrains.isEmpty {
            let batch = pendingDrains
            pendingDrains.removeAll(keepingCapacity: true)
            for connection in batch { connection.drainStashedLines() }
        }
        // Stay active for one more turn after doing work: the lines just delivered produced output
        // that the end-of-turn hook must flush without waiting for unrelated I/O.
        if !hadWork && pendingDrains.isEmpty && !promptTurnRequested, let handle = promptTurnHandle {
            uv_idle_stop(handle)
            promptTurnActive = false
        }
    }
}

private let endOfTurnFired: uv_check_cb = { handle in
    Unmanaged<EventLoop>.fromOpaque(handle!.pointee.data).takeUnretainedValue().runEndOfTurn()
}

private let promptTurnFired: uv_idle_cb = { handle in
    Unmanaged<EventLoop>.fromOpaque(handle!.pointee.data).takeUnretainedValue().runPromptTurn()
}

/// Handles nobody in the Reactor owns: close them without a callback (their memory is the creator's).
private let closeForeignHandle: uv_walk_cb = { handle, _ in
    if uv_is_closing(handle) == 0 { uv_close(handle, nil) }
}
