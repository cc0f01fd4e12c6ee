import Glibc

/// Where the Coordinator reads time. Injected so that tests can move time by hand.
/// Wall-clock milliseconds stamp everything that must survive a restart (lease and lock expiry);
/// the monotonic reading only measures durations (acquisition latency).
protocol Clock: AnyObject {
    /// Unix time in milliseconds.
    var wallMs: Int64 { get }
    /// A monotonic reading in microseconds, for measuring durations only.
    var monotonicMicros: UInt64 { get }
}

/// The real clock. The server refreshes `wallMs` once per loop turn, so a whole batch of
/// requests sees one instant and nobody calls clock_gettime per request.
final class SystemClock: Clock {
    private(set) var wallMs: Int64 = 0

    init() { refresh() }

    func refresh() {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        wallMs = Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    var monotonicMicros: UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }
}

/// A clock that only moves when told to, for tests.
final class ManualClock: Clock {
    var wallMs: Int64
    var monotonicMicros: UInt64 = 0

    init(wallMs: Int64 = 1_700_000_000_000) { self.wallMs = wallMs }

    func advance(ms: Int64) {
        wallMs += ms
        monotonicMicros += UInt64(ms) * 1000
    }
}
