/// The runtime counters of the original's Metrics answer, plus lock counters.
struct RuntimeCounters {
    var registeredTasks: UInt64 = 0
    var acquireAttempts: UInt64 = 0
    var acquiredNodes: UInt64 = 0
    var acquisitionLatencyMicrosTotal: UInt64 = 0
    var committedEvents: UInt64 = 0
    var heartbeats: UInt64 = 0
    var completedNodes: UInt64 = 0
    var failedNodes: UInt64 = 0
    var timeoutRollbacks: UInt64 = 0
    var acquiredResourceLocks: UInt64 = 0
    var releasedResourceLocks: UInt64 = 0

    var averageAcquisitionLatencyMicros: UInt64 {
        acquireAttempts == 0 ? 0 : acquisitionLatencyMicrosTotal / acquireAttempts
    }
}

/// Totals over the whole state, kept up to date as it changes so Metrics never scans.
struct StateTotals {
    var tasks = 0
    var nodes = 0
    var events = 0
    /// Node count per NodeStatus.rawValue, over all tasks.
    var nodeCounts: [Int] = [0, 0, 0, 0]
}
