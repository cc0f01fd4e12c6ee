import AgentdBase
import Glibc

/// Where the Coordinator reads time. Injected so that tests can move time by hand.
/// Wall-clock milliseconds stamp everything that must survive a restart (lease and lock expiry);
/// the monotonic reading only measures durations (acquisition latency).
package protocol Clock: AnyObject {
    /// Unix time in milliseconds.
    var wallMs: Int64 { get }
    /// A monotonic reading in microseconds, for measuring durations only.
    var monotonicMicros: UInt64 { get }
}

/// The real clock, read at most once per loop turn: the server marks it stale at the end of each
/// turn, and the first reading of the next turn asks the system. A whole batch of requests sees
/// one instant and nobody calls clock_gettime per request.
package final class SystemClock: Clock {
    private var reading: Int64 = 0
    private var isStale = true

    package init() {}

    package var wallMs: Int64 {
        if isStale {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            reading = Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
            isStale = false
        }
        return reading
    }

    /// The next reading asks the system again.
    package func markStale() { isStale = true }

    package var monotonicMicros: UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }
}

/// A clock that only moves when told to, for tests.
package final class ManualClock: Clock {
    package var wallMs: Int64
    package var monotonicMicros: UInt64 = 0

    package init(wallMs: Int64 = 1_700_000_000_000) { self.wallMs = wallMs }

    package func advance(ms: Int64) {
        wallMs += ms
        monotonicMicros += UInt64(ms) * 1000
    }
}
