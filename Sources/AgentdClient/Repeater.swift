/// Runs `body` every `interval` seconds on a thread of its own until `stop()`: what keeps a
/// lease or a lock alive while the work it guards runs (a heartbeat every third of the TTL).
/// `body` returns false to stop repeating (a heartbeat that was refused).
public final class Repeater: @unchecked Sendable {
    private let monitor = Monitor()
    private var stopped = false

    public init(every interval: Double, _ body: @escaping () -> Bool) {
        startThread { [self] in
            var next = Monitor.now() + interval
            while true {
                let stop = monitor.locked { monitor.wait(until: next) { stopped } }
                if stop || !body() { return }
                next += interval
                // A body that overran its slot does not fire in a burst to catch up.
                if next < Monitor.now() { next = Monitor.now() + interval }
            }
        }
    }

    /// Stops before the next run; a run in progress finishes.
    public func stop() {
        monitor.locked { stopped = true }
        monitor.broadcast()
    }
}
