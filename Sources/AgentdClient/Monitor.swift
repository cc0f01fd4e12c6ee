import Glibc

/// A mutex with one condition: the little a client needs to hand answers from its reader
/// thread to the threads that wait for them, without Foundation or Dispatch.
final class Monitor: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Call with the lock held: waits until `done()` or the deadline (seconds on the monotonic
    /// clock, nil = forever). Returns `done()`.
    func wait(until deadline: Double?, _ done: () -> Bool) -> Bool {
        while !done() {
            guard let deadline else {
                pthread_cond_wait(condition, mutex)
                continue
            }
            let left = deadline - Monitor.now()
            if left <= 0 { return done() }
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let nanos = Int(ts.tv_nsec) + Int((left - left.rounded(.down)) * 1e9)
            ts.tv_sec += Int(left.rounded(.down)) + nanos / 1_000_000_000
            ts.tv_nsec = nanos % 1_000_000_000
            pthread_cond_timedwait(condition, mutex, &ts)
        }
        return true
    }

    func broadcast() { pthread_cond_broadcast(condition) }

    /// Seconds on the monotonic clock.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// Starts `body` on a new detached thread.
func startThread(_ body: @escaping () -> Void) {
    final class Box { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    pthread_detach(thread)
}
