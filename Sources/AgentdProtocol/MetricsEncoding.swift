import AgentdBase
import AgentdCore

extension ResultEncoding {
    /// Metrics: the original's keys in its order; `node_status_counts` sorted, statuses present only.
    static func metrics(_ snapshot: MetricsSnapshot, uptimeSecs: UInt64, storeFacts: RequestHandler.StoreFacts,
                        to out: inout [UInt8]) {
        let c = snapshot.counters
        let totals = snapshot.totals
        out.appendASCII("{\"uptime_secs\":")
        out.appendJSONInt(Int64(uptimeSecs))
        out.appendASCII(",\"running_timeout_secs\":")
        out.appendJSONInt(snapshot.settings.nodeTimeoutSecs)
        out.appendASCII(",\"context_event_limit\":")
        out.appendJSONInt(Int64(snapshot.settings.contextEventLimit))
        out.appendASCII(",\"runtime\":{")
        let runtime: [(StaticString, UInt64)] = [
            ("registered_tasks", c.registeredTasks), ("acquire_attempts", c.acquireAttempts),
            ("acquired_nodes", c.acquiredNodes), ("acquisition_latency_micros_total", c.acquisitionLatencyMicrosTotal),
            ("average_acquisition_latency_micros", c.averageAcquisitionLatencyMicros),
            ("committed_events", c.committedEvents), ("heartbeats", c.heartbeats),
            ("completed_nodes", c.completedNodes), ("failed_nodes", c.failedNodes),
            ("timeout_rollbacks", c.timeoutRollbacks), ("acquired_resource_locks", c.acquiredResourceLocks),
            ("released_resource_locks", c.releasedResourceLocks),
        ]
        for (offset, (name, value)) in runtime.enumerated() {
            if offset > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            out.appendASCII(name)
            out.appendASCII("\":")
            out.appendJSONInt(Int64(bitPattern: value))
        }
        out.appendASCII("},\"database\":{\"schema_version\":")
        out.appendJSONInt(storeFacts.schemaVersion)
        out.appendASCII(",\"latest_schema_version\":")
        out.appendJSONInt(storeFacts.latestSchemaVersion)
        out.appendASCII(",\"total_tasks\":")
        out.appendJSONInt(Int64(totals.tasks))
        out.appendASCII(",\"total_nodes\":")
        out.appendJSONInt(Int64(totals.nodes))
        out.appendASCII(",\"total_events\":")
        out.appendJSONInt(Int64(totals.events))
        out.appendASCII(",\"active_resource_locks\":")
        out.appendJSONInt(Int64(snapshot.lockCount))
        // Expiry is exact (a deadline, not a sweep), so nothing expired is ever still held.
        out.appendASCII(",\"expired_resource_locks\":0,\"running_leases\":")
        out.appendJSONInt(Int64(totals.nodeCounts[Int(NodeStatus.running.rawValue)]))
        out.appendASCII(",\"expired_running_leases\":0,\"node_status_counts\":")
        ResultEncoding.statusCounts({ totals.nodeCounts[Int($0.rawValue)] }, to: &out)
        out.appendASCII("}}")
    }
}
