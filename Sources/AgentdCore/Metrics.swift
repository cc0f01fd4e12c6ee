import AgentdBase
/// The runtime counters of the original's Metrics answer, plus lock counters.
package struct RuntimeCounters {
    package var registeredTasks: UInt64 = 0
    package var acquireAttempts: UInt64 = 0
    package var acquiredNodes: UInt64 = 0
    package var acquisitionLatencyMicrosTotal: UInt64 = 0
    package var committedEvents: UInt64 = 0
    package var heartbeats: UInt64 = 0
    package var completedNodes: UInt64 = 0
    package var failedNodes: UInt64 = 0
    package var timeoutRollbacks: UInt64 = 0
    package var acquiredResourceLocks: UInt64 = 0
    package var releasedResourceLocks: UInt64 = 0

    package var averageAcquisitionLatencyMicros: UInt64 {
        acquireAttempts == 0 ? 0 : acquisitionLatencyMicrosTotal / acquireAttempts
    }
}

/// Totals over the whole state, kept up to date as it changes so Metrics never scans.
package struct StateTotals {
    package var tasks = 0
    package var nodes = 0
    package var events = 0
    /// Node count per NodeStatus.rawValue, over all tasks.
    package var nodeCounts: [Int] = [0, 0, 0, 0]
}

/// What Metrics reports.
package struct MetricsSnapshot {
    package var counters: RuntimeCounters
    package var totals: StateTotals
    package var lockCount: Int
    package var settings: Coordinator.Settings
}

/// Reads for answers that report the state as of now: what is due expires first, so no answer
/// shows a lease or lock whose second has passed.
extension Coordinator {
    package func taskAsOfNow(_ id: UUID128) throws -> TaskRecord {
        expireDue()
        return try task(id)
    }

    package func locksAsOfNow(prefix: String) -> [ResourceLock] {
        expireDue()
        return locksSortedByKey(prefix: prefix)
    }

    package func metricsAsOfNow() -> MetricsSnapshot {
        expireDue()
        return MetricsSnapshot(counters: counters, totals: totals, lockCount: lockCount, settings: settings)
    }
}
