import AgentdBase
import AgentdCore

/// Answers as the original writes them, key order included. The original builds some objects
/// from structs (their keys in declaration order) and others as maps (keys sorted): the acquire
/// `context` and everything in it, `counts`. Our own keys follow the original's in struct-ordered
/// objects and sort in with the rest in sorted ones. Client JSON (context, payloads) is verbatim.
package enum ResultEncoding {
    /// A node as TaskStatus lists it, in the original's struct order: `{id, task_id, status,
    /// dependencies, payload_schema, result_payload, acquired_at, lease_id, lease_owner,
    /// lease_expires_at, updated_at}`, then ours: `attempts, max_attempts, name`.
    package static func node(_ index: Int32, of task: TaskRecord, to out: inout [UInt8]) {
        let node = task.nodes[Int(index)]
        out.appendASCII("{\"id\":")
        out.appendQuotedUUID(node.id)
        out.appendASCII(",\"task_id\":")
        out.appendQuotedUUID(task.id)
        out.appendASCII(",\"status\":\"")
        out.append(contentsOf: node.status.name.utf8)
        out.appendASCII("\",\"dependencies\":")
        appendDependencies(of: node, in: task, to: &out)
        out.appendASCII(",\"payload_schema\":")
        out.append(contentsOf: node.payloadSchema)
        out.appendASCII(",\"result_payload\":")
        appendResult(of: node, to: &out)
        out.appendASCII(",\"acquired_at\":")
        out.appendOptionalInt(node.lease?.acquiredAtSecs)
        out.appendASCII(",\"lease_id\":")
        out.appendOptionalUUID(node.lease?.id)
        out.appendASCII(",\"lease_owner\":")
        out.appendOptionalString(node.lease?.owner)
        out.appendASCII(",\"lease_expires_at\":")
        out.appendOptionalInt(node.lease.map { $0.expiresAtMs / 1000 })
        out.appendASCII(",\"updated_at\":")
        out.appendJSONInt(node.updatedAtSecs)
        out.appendASCII(",\"attempts\":")
        out.appendJSONInt(Int64(node.attempts))
        out.appendASCII(",\"max_attempts\":")
        appendMaxAttempts(of: node, to: &out)
        out.appendASCII(",\"name\":")
        out.appendOptionalString(node.name)
        out.append(UInt8(ascii: "}"))
    }

    /// The acquire context's node: the same fields as `node`, keys sorted (the original builds it
    /// as a map).
    package static func sortedNode(_ index: Int32, of task: TaskRecord, to out: inout [UInt8]) {
        let node = task.nodes[Int(index)]
        out.appendASCII("{\"acquired_at\":")
        out.appendOptionalInt(node.lease?.acquiredAtSecs)
        out.appendASCII(",\"attempts\":")
        out.appendJSONInt(Int64(node.attempts))
        out.appendASCII(",\"dependencies\":")
        appendDependencies(of: node, in: task, to: &out)
        out.appendASCII(",\"id\":")
        out.appendQuotedUUID(node.id)
        out.appendASCII(",\"lease_expires_at\":")
        out.appendOptionalInt(node.lease.map { $0.expiresAtMs / 1000 })
        out.appendASCII(",\"lease_id\":")
        out.appendOptionalUUID(node.lease?.id)
        out.appendASCII(",\"lease_owner\":")
        out.appendOptionalString(node.lease?.owner)
        out.appendASCII(",\"max_attempts\":")
        appendMaxAttempts(of: node, to: &out)
        out.appendASCII(",\"name\":")
        out.appendOptionalString(node.name)
        out.appendASCII(",\"payload_schema\":")
        out.append(contentsOf: node.payloadSchema)
        out.appendASCII(",\"result_payload\":")
        appendResult(of: node, to: &out)
        out.appendASCII(",\"status\":\"")
        out.append(contentsOf: node.status.name.utf8)
        out.appendASCII("\",\"task_id\":")
        out.appendQuotedUUID(task.id)
        out.appendASCII(",\"updated_at\":")
        out.appendJSONInt(node.updatedAtSecs)
        out.append(UInt8(ascii: "}"))
    }

    private static func appendDependencies(of node: Node, in task: TaskRecord, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (offset, dependency) in node.dependencies.enumerated() {
            if offset > 0 { out.append(UInt8(ascii: ",")) }
            out.appendQuotedUUID(task.nodes[Int(dependency)].id)
        }
        out.append(UInt8(ascii: "]"))
    }

    private static func appendResult(of node: Node, to out: inout [UInt8]) {
        if let result = node.result { out.append(contentsOf: result) } else { out.appendASCII("null") }
    }

    private static func appendMaxAttempts(of node: Node, to out: inout [UInt8]) {
        out.appendOptionalInt(node.maxAttempts > 0 ? Int64(node.maxAttempts) : nil)
    }

    /// `{COMPLETED?, FAILED?, PENDING?, RUNNING?}`: the statuses present, sorted (the original's
    /// map), so the counts add up to the number of nodes.
    package static func counts(_ task: TaskRecord, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        for status in [NodeStatus.completed, .failed, .pending, .running] {
            let value = task.counts[Int(status.rawValue)]
            guard value > 0 else { continue }
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: status.name.utf8)
            out.appendASCII("\":")
            out.appendJSONInt(Int64(value))
        }
        out.append(UInt8(ascii: "}"))
    }

    /// ListTasks entries: `{id, goal, status, created_at, counts, blocked_nodes}`.
    package static func taskListing(_ task: TaskRecord, to out: inout [UInt8]) {
        out.appendASCII("{\"id\":")
        out.appendQuotedUUID(task.id)
        out.appendASCII(",\"goal\":")
        out.appendJSONString(task.goal)
        out.appendASCII(",\"status\":\"")
        out.append(contentsOf: task.status.name.utf8)
        out.appendASCII("\",\"created_at\":")
        out.appendISOString(unixMs: task.createdAtMs)
        out.appendASCII(",\"counts\":")
        counts(task, to: &out)
        out.appendASCII(",\"blocked_nodes\":")
        out.appendJSONInt(Int64(task.blockedCount))
        out.append(UInt8(ascii: "}"))
    }

    /// TaskStatus's task, in the original's struct order `{id, goal, context, created_at}`, then
    /// ours: `status` and `blocked_nodes` (PENDING nodes that can never run).
    package static func taskSummary(_ task: TaskRecord, to out: inout [UInt8]) {
        out.appendASCII("{\"id\":")
        out.appendQuotedUUID(task.id)
        out.appendASCII(",\"goal\":")
        out.appendJSONString(task.goal)
        out.appendASCII(",\"context\":")
        out.append(contentsOf: task.context)
        out.appendASCII(",\"created_at\":")
        out.appendISOString(unixMs: task.createdAtMs)
        out.appendASCII(",\"status\":\"")
        out.append(contentsOf: task.status.name.utf8)
        out.appendASCII("\",\"blocked_nodes\":")
        out.appendJSONInt(Int64(task.blockedCount))
        out.append(UInt8(ascii: "}"))
    }

    /// The acquire context's task, keys sorted: `{context, created_at, goal, id}`.
    private static func sortedTaskSummary(_ task: TaskRecord, to out: inout [UInt8]) {
        out.appendASCII("{\"context\":")
        out.append(contentsOf: task.context)
        out.appendASCII(",\"created_at\":")
        out.appendISOString(unixMs: task.createdAtMs)
        out.appendASCII(",\"goal\":")
        out.appendJSONString(task.goal)
        out.appendASCII(",\"id\":")
        out.appendQuotedUUID(task.id)
        out.append(UInt8(ascii: "}"))
    }

    /// An event as ReadEvents lists it, in the original's struct order `{id, task_id, node_id,
    /// action_type, payload, timestamp}`, then ours: `seq`.
    package static func event(_ event: JournalEvent, of task: TaskRecord, to out: inout [UInt8]) {
        out.appendASCII("{\"id\":")
        out.appendQuotedUUID(event.id)
        out.appendASCII(",\"task_id\":")
        out.appendQuotedUUID(task.id)
        out.appendASCII(",\"node_id\":")
        out.appendQuotedUUID(task.nodes[Int(event.node)].id)
        out.appendASCII(",\"action_type\":")
        out.appendJSONString(event.actionType)
        out.appendASCII(",\"payload\":")
        out.append(contentsOf: event.payload)
        out.appendASCII(",\"timestamp\":")
        out.appendISOString(unixMs: event.timestampMs)
        out.appendASCII(",\"seq\":")
        out.appendJSONInt(event.seq)
        out.append(UInt8(ascii: "}"))
    }

    /// An event of the acquire context's journal, keys sorted: `{action_type, id, node_id,
    /// payload, seq, task_id, timestamp}`.
    package static func sortedEvent(_ event: JournalEvent, of task: TaskRecord, to out: inout [UInt8]) {
        out.appendASCII("{\"action_type\":")
        out.appendJSONString(event.actionType)
        out.appendASCII(",\"id\":")
        out.appendQuotedUUID(event.id)
        out.appendASCII(",\"node_id\":")
        out.appendQuotedUUID(task.nodes[Int(event.node)].id)
        out.appendASCII(",\"payload\":")
        out.append(contentsOf: event.payload)
        out.appendASCII(",\"seq\":")
        out.appendJSONInt(event.seq)
        out.appendASCII(",\"task_id\":")
        out.appendQuotedUUID(task.id)
        out.appendASCII(",\"timestamp\":")
        out.appendISOString(unixMs: event.timestampMs)
        out.append(UInt8(ascii: "}"))
    }

    /// AcquireNextNode's answer: the lease in struct order `{task_id, node_id, lease_id,
    /// lease_owner, lease_expires_at, context}`, and the context the agent needs, built as the
    /// original builds it (a map): `{completed_dependencies, event_journal, event_journal_limit,
    /// node, task}`, every object inside sorted too.
    package static func acquired(_ index: Int32, of task: TaskRecord, eventLimit: Int, recentEvents: RecentEventsCache,
                                 to out: inout [UInt8]) {
        let node = task.nodes[Int(index)]
        let lease = node.lease!
        out.appendASCII("{\"task_id\":")
        out.appendQuotedUUID(task.id)
        out.appendASCII(",\"node_id\":")
        out.appendQuotedUUID(node.id)
        out.appendASCII(",\"lease_id\":")
        out.appendQuotedUUID(lease.id)
        out.appendASCII(",\"lease_owner\":")
        out.appendJSONString(lease.owner)
        out.appendASCII(",\"lease_expires_at\":")
        out.appendJSONInt(lease.expiresAtMs / 1000)
        out.appendASCII(",\"context\":{\"completed_dependencies\":[")
        for (offset, dependency) in node.dependencies.enumerated() {
            if offset > 0 { out.append(UInt8(ascii: ",")) }
            let dep = task.nodes[Int(dependency)]
            out.appendASCII("{\"node_id\":")
            out.appendQuotedUUID(dep.id)
            out.appendASCII(",\"result_payload\":")
            appendResult(of: dep, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.appendASCII("],\"event_journal\":[")
        recentEvents.appendRecentEvents(of: task, limit: eventLimit, to: &out)
        out.appendASCII("],\"event_journal_limit\":")
        out.appendJSONInt(Int64(eventLimit))
        out.appendASCII(",\"node\":")
        sortedNode(index, of: task, to: &out)
        out.appendASCII(",\"task\":")
        sortedTaskSummary(task, to: &out)
        out.appendASCII("}}")
    }

    /// TaskStatus: `{task (with status), counts (present statuses only, sorted), nodes in registration order}`.
    package static func taskStatus(_ task: TaskRecord, to out: inout [UInt8]) {
        out.appendASCII("{\"task\":")
        taskSummary(task, to: &out)
        out.appendASCII(",\"counts\":")
        counts(task, to: &out)
        out.appendASCII(",\"nodes\":[")
        for index in task.nodes.indices {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            node(Int32(index), of: task, to: &out)
        }
        out.appendASCII("]}")
    }

    /// `{resource_key, lease_id, owner, provider, task_id, node_id, metadata, acquired_at,
    /// lease_expires_at[, updated_at], fencing_token, waiters}`.
    package static func lock(_ lock: ResourceLock, withUpdatedAt: Bool, waiters: Int, to out: inout [UInt8]) {
        out.appendASCII("{\"resource_key\":")
        out.appendJSONString(lock.key)
        out.appendASCII(",\"lease_id\":")
        out.appendQuotedUUID(lock.leaseId)
        out.appendASCII(",\"owner\":")
        out.appendJSONString(lock.owner)
        out.appendASCII(",\"provider\":")
        out.appendOptionalString(lock.provider)
        out.appendASCII(",\"task_id\":")
        out.appendOptionalUUID(lock.taskId)
        out.appendASCII(",\"node_id\":")
        out.appendOptionalUUID(lock.nodeId)
        out.appendASCII(",\"metadata\":")
        out.append(contentsOf: lock.metadata)
        out.appendASCII(",\"acquired_at\":")
        out.appendJSONInt(lock.acquiredAtSecs)
        out.appendASCII(",\"lease_expires_at\":")
        out.appendJSONInt(lock.expiresAtMs / 1000)
        if withUpdatedAt {
            out.appendASCII(",\"updated_at\":")
            out.appendJSONInt(lock.updatedAtSecs)
        }
        out.appendASCII(",\"fencing_token\":")
        out.appendJSONInt(lock.fencingToken)
        out.appendASCII(",\"waiters\":")
        out.appendJSONInt(Int64(waiters))
        out.append(UInt8(ascii: "}"))
    }
}
