import CUV

/// One uv_signal handle. Unreferenced, so a daemon whose listener and connections are closed
/// leaves `run()` even though it still watches SIGINT/SIGTERM.
final class SignalWatcher {
    private let handle: UnsafeMutablePointer<uv_signal_t>
    private let body: () -> Void

    init(loop: EventLoop, signum: Int32, body: @escaping () -> Void) {
        self.body = body
        handle = .allocate(capacity: 1)
        uv_signal_init(loop.raw, handle)
        handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let status = uv_signal_start(handle, signalFired, signum)
        precondition(status == 0, "uv_signal_start(\(signum)) failed: \(ReactorError.uv("uv_signal_start", status))")
        uv_unref(asHandle(handle))
    }

    fileprivate func fire() { body() }

    /// The loop owns watchers and calls this from EventLoop.close().
    func close() {
        uv_close(asHandle(handle), freeHandleOnClose)
    }
}

private let signalFired: uv_signal_cb = { handle, _ in
    Unmanaged<SignalWatcher>.fromOpaque(handle!.pointee.data).takeUnretainedValue().fire()
}

extension EventLoop {
    /// Runs `body` on the loop thread whenever `signum` arrives (libuv turns the signal into I/O, so
    /// `body` may do anything, e.g. stop the listener). Watchers live until `close()`.
    public func onSignal(_ signum: Int32, _ body: @escaping () -> Void) {
        precondition(!isClosed, "EventLoop.onSignal after close()")
        signalWatchers.append(SignalWatcher(loop: self, signum: signum, body: body))
    }
}
