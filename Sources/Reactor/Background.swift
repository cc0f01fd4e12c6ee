import CUV

/// The two halves of a runInBackground call, kept alive until `done` has run.
private final class BackgroundJob {
    let work: () -> Void
    let done: () -> Void
    init(work: @escaping () -> Void, done: @escaping () -> Void) {
        self.work = work
        self.done = done
    }
}

extension EventLoop {
    /// Runs `work` on libuv's thread pool, then `done` on the loop thread. `work` must not touch any
    /// Reactor object. A pending job keeps the loop alive until `done` has run.
    public func runInBackground(_ work: @escaping () -> Void, then done: @escaping () -> Void) {
        precondition(!isClosed, "EventLoop.runInBackground after close()")
        let request = UnsafeMutablePointer<uv_work_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passRetained(BackgroundJob(work: work, done: done)).toOpaque()
        let status = uv_queue_work(raw, request, backgroundWork, backgroundDone)
        precondition(status == 0, "uv_queue_work failed: \(status)")
    }
}

private let backgroundWork: uv_work_cb = { request in
    Unmanaged<BackgroundJob>.fromOpaque(request!.pointee.data).takeUnretainedValue().work()
}

private let backgroundDone: uv_after_work_cb = { request, _ in
    let job = Unmanaged<BackgroundJob>.fromOpaque(request!.pointee.data).takeRetainedValue()
    request!.deallocate()
    job.done()
}
