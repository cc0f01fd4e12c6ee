import CUV

/// A uv_timer. One-shot unless `repeatMs` is given; starting again re-arms it with the new callback.
/// The handle (and this object) stays alive until `close()` or `EventLoop.close()`.
public final class Timer {
    private let loop: EventLoop
    private let handle: UnsafeMutablePointer<uv_timer_t>
    private var callback: (() -> Void)?
    public private(set) var isClosed = false

    public init(loop: EventLoop) {
        precondition(!loop.isClosed, "Timer on a closed EventLoop")
        self.loop = loop
        handle = .allocate(capacity: 1)
        uv_timer_init(loop.raw, handle)
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        loop.track(self)
    }

    public func start(afterMs: UInt64, repeatMs: UInt64 = 0, _ callback: @escaping () -> Void) {
        guard !isClosed else { return }
        self.callback = callback
        uv_timer_start(handle, timerFired, afterMs, repeatMs)
    }

    public func stop() {
        guard !isClosed else { return }
        uv_timer_stop(handle)
    }

    public var isActive: Bool { !isClosed && uv_is_active(asHandle(handle)) != 0 }

    /// An armed timer keeps `run()` going by default; set false for watchdogs and periodic stats.
    public var keepsLoopAlive: Bool = true {
        didSet {
            guard !isClosed else { return }
            if keepsLoopAlive { uv_ref(asHandle(handle)) } else { uv_unref(asHandle(handle)) }
        }
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        callback = nil
        uv_close(asHandle(handle), timerClosed)
    }

    fileprivate func fire() {
        guard let callback else { return }
        callback()
        // Timers run before poll: make sure output the callback produced is flushed this turn.
        loop.requestPromptEndOfTurn()
    }

    fileprivate func didClose() {
        handle.deallocate()
        loop.untrack(self)
    }
}

extension Timer: LoopResource {
    func closeForLoopShutdown() { close() }
}

private let timerFired: uv_timer_cb = { handle in
    Unmanaged<Timer>.fromOpaque(handle!.pointee.data).takeUnretainedValue().fire()
}

private let timerClosed: uv_close_cb = { handle in
    let owner = Unmanaged<Timer>.fromOpaque(handle!.pointee.data)
    owner.takeUnretainedValue().didClose()
    owner.release()
}
