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
        node(task.nodes[Int(index)], of: task, to: &out)
    }

    /// A node value (current, or as a snapshot kept it) of `task`. Composed in one piece (see
    /// JSONCursor): TaskStatus writes one per node.
    package static func node(_ node: Node, of task: TaskRecord, to out: inout [UInt8]) {
        out.appendComposed(maxCount: maxBytes(of: node)) { out in
            out.ascii("{\"id\":")
            out.quotedUUID(node.id)
            out.ascii(",\"task_id\":")
            out.quotedUUID(task.id)
            out.ascii(",\"status\":")
            writeStatus(node.status, to: &out)
            out.ascii(",\"dependencies\":")
            writeDependencies(of: node, in: task, to: &out)
            out.ascii(",\"payload_schema\":")
            out.raw(node.payloadSchema)
            out.ascii(",\"result_payload\":")
            writeResult(of: node, to: &out)
            out.ascii(",\"acquired_at\":")
            out.optionalInt(node.lease?.acquiredAtSecs)
            out.ascii(",\"lease_id\":")
            out.optionalUUID(node.lease?.id)
            out.ascii(",\"lease_owner\":")
            out.optionalString(node.lease?.owner)
            out.ascii(",\"lease_expires_at\":")
            out.optionalInt(node.lease.map { $0.expiresAtMs / 1000 })
            out.ascii(",\"updated_at\":")
            out.int(node.updatedAtSecs)
            out.ascii(",\"attempts\":")
            out.int(Int64(node.attempts))
            out.ascii(",\"max_attempts\":")
            writeMaxAttempts(of: node, to: &out)
            out.ascii(",\"name\":")
            out.optionalString(node.name)
            out.byte(UInt8(ascii: "}"))
        }
    }

    /// The acquire context's node: the same fields as `node`, keys sorted (the original builds it
    /// as a map).
    package static func sortedNode(_ index: Int32, of task: TaskRecord, to out: inout [UInt8]) {
        let node = task.nodes[Int(index)]
        out.appendComposed(maxCount: maxBytes(of: node)) { out in
            out.ascii("{\"acquired_at\":")
            out.optionalInt(node.lease?.acquiredAtSecs)
            out.ascii(",\"attempts\":")
            out.int(Int64(node.attempts))
            out.ascii(",\"dependencies\":")
            writeDependencies(of: node, in: task, to: &out)
            out.ascii(",\"id\":")
            out.quotedUUID(node.id)
            out.ascii(",\"lease_expires_at\":")
            out.optionalInt(node.lease.map { $0.expiresAtMs / 1000 })
            out.ascii(",\"lease_id\":")
            out.optionalUUID(node.lease?.id)
            out.ascii(",\"lease_owner\":")
            out.optionalString(node.lease?.owner)
            out.ascii(",\"max_attempts\":")
            writeMaxAttempts(of: node, to: &out)
            out.ascii(",\"name\":")
            out.optionalString(node.name)
            out.ascii(",\"payload_schema\":")
            out.raw(node.payloadSchema)
            out.ascii(",\"result_payload\":")
            writeResult(of: node, to: &out)
            out.ascii(",\"status\":")
            writeStatus(node.status, to: &out)
            out.ascii(",\"task_id\":")
            out.quotedUUID(task.id)
            out.ascii(",\"updated_at\":")
            out.int(node.updatedAtSecs)
            out.byte(UInt8(ascii: "}"))
        }
    }

    /// The most either node object can take: 450 covers its keys, three UUIDs, a status and five
    /// integers; the rest grows with the node.
    private static func maxBytes(of node: Node) -> Int {
        450 + node.dependencies.count * 39 + node.payloadSchema.count + (node.result?.count ?? 4)
            + (node.lease.map { JSONCursor.maxBytes($0.owner) } ?? 4) + (node.name.map(JSONCursor.maxBytes) ?? 4)
    }

    private static func writeStatus(_ status: NodeStatus, to out: inout JSONCursor) {
        out.byte(UInt8(ascii: "\""))
        out.ascii(status.staticName)
        out.byte(UInt8(ascii: "\""))
    }

    private static func writeDependencies(of node: Node, in task: TaskRecord, to out: inout JSONCursor) {
        out.byte(UInt8(ascii: "["))
        for (offset, dependency) in node.dependencies.enumerated() {
            if offset > 0 { out.byte(UInt8(ascii: ",")) }
            out.quotedUUID(task.nodes[Int(dependency)].id)
        }
        out.byte(UInt8(ascii: "]"))
    }

    private static func writeResult(of node: Node, to out: inout JSONCursor) {
        if let result = node.result { out.raw(result) } else { out.ascii("null") }
    }

    private static func writeMaxAttempts(of node: Node, to out: inout JSONCursor) {
        out.optionalInt(node.maxAttempts > 0 ? Int64(node.maxAttempts) : nil)
    }

    /// `{COMPLETED?, FAILED?, PENDING?, RUNNING?}`: the statuses present, sorted (the original's
    /// map), so the counts add up to the number of nodes.
    package static func counts(_ task: TaskRecord, to out: inout [UInt8]) {
        statusCounts({ task.counts[Int($0.rawValue)] }, to: &out)
    }

    /// `{"COMPLETED":n,...}` with the statuses whose count is not 0, in name order (the
    /// original's map): a task's counts, and Metrics' over all tasks.
    package static func statusCounts(_ count: (NodeStatus) -> Int, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        for status in [NodeStatus.completed, .failed, .pending, .running] {
            let value = count(status)
            guard value > 0 else { continue }
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(UInt8(ascii: "\""))
            out.appendASCII(status.staticName)
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
        out.appendComposed(maxCount: 150 + task.context.count + JSONCursor.maxBytes(task.goal)) { out in
            out.ascii("{\"context\":")
            out.raw(task.context)
            out.ascii(",\"created_at\":")
            out.isoString(unixMs: task.createdAtMs)
            out.ascii(",\"goal\":")
            out.string(task.goal)
            out.ascii(",\"id\":")
            out.quotedUUID(task.id)
            out.byte(UInt8(ascii: "}"))
        }
    }

    /// An event as ReadEvents lists it, in the original's struct order `{id, task_id, node_id,
    /// action_type, payload, timestamp}`, then ours: `seq`.
    package static func event(_ event: JournalEvent, of task: TaskRecord, to out: inout [UInt8]) {
        let nodeId = task.nodes[Int(event.node)].id
        out.appendComposed(maxCount: 300 + JSONCursor.maxBytes(event.actionType) + event.payload.count) { out in
            out.ascii("{\"id\":")
            out.quotedUUID(event.id)
            out.ascii(",\"task_id\":")
            out.quotedUUID(task.id)
            out.ascii(",\"node_id\":")
            out.quotedUUID(nodeId)
            out.ascii(",\"action_type\":")
            out.string(event.actionType)
            out.ascii(",\"payload\":")
            out.raw(event.payload)
            out.ascii(",\"timestamp\":")
            out.isoString(unixMs: event.timestampMs)
            out.ascii(",\"seq\":")
            out.int(event.seq)
            out.byte(UInt8(ascii: "}"))
        }
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
        // Composed in pieces around the parts other encoders write (see JSONCursor).
        out.appendComposed(maxCount: 300 + JSONCursor.maxBytes(lease.owner)) { out in
            out.ascii("{\"task_id\":")
            out.quotedUUID(task.id)
            out.ascii(",\"node_id\":")
            out.quotedUUID(node.id)
            out.ascii(",\"lease_id\":")
            out.quotedUUID(lease.id)
            out.ascii(",\"lease_owner\":")
            out.string(lease.owner)
            out.ascii(",\"lease_expires_at\":")
            out.int(lease.expiresAtMs / 1000)
            out.ascii(",\"context\":{\"completed_dependencies\":[")
        }
        for (offset, dependency) in node.dependencies.enumerated() {
            let dep = task.nodes[Int(dependency)]
            out.appendComposed(maxCount: 100 + (dep.result?.count ?? 4)) { out in
                if offset > 0 { out.byte(UInt8(ascii: ",")) }
                out.ascii("{\"node_id\":")
                out.quotedUUID(dep.id)
                out.ascii(",\"result_payload\":")
                writeResult(of: dep, to: &out)
                out.byte(UInt8(ascii: "}"))
            }
        }
        out.appendASCII("],\"event_journal\":[")
        recentEvents.appendRecentEvents(of: task, limit: eventLimit, to: &out)
        out.appendComposed(maxCount: 64) { out in
            out.ascii("],\"event_journal_limit\":")
            out.int(Int64(eventLimit))
            out.ascii(",\"node\":")
        }
        sortedNode(index, of: task, to: &out)
        out.appendASCII(",\"task\":")
        sortedTaskSummary(task, to: &out)
        out.appendASCII("}}")
    }

    /// TaskStatus: `{task (with status), counts (present statuses only, sorted), nodes in registration order}`.
    package static func taskStatus(_ task: TaskRecord, to out: inout [UInt8]) {
        taskStatusHead(task, to: &out)
        for index in task.nodes.indices {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            node(Int32(index), of: task, to: &out)
        }
        out.appendASCII("]}")
    }

    /// `{"task":{...},"counts":{...},"nodes":[`: what comes before the first node.
    package static func taskStatusHead(_ task: TaskRecord, to out: inout [UInt8]) {
        out.appendASCII("{\"task\":")
        taskSummary(task, to: &out)
        out.appendASCII(",\"counts\":")
        counts(task, to: &out)
        out.appendASCII(",\"nodes\":[")
    }

    /// A page of TaskStatus (node_offset/node_limit): the nodes in `range`, then
    /// `next_node_offset` (null after the last node).
    package static func taskStatusPage(_ task: TaskRecord, nodes range: Range<Int>, to out: inout [UInt8]) {
        taskStatusHead(task, to: &out)
        for index in range {
            if index > range.lowerBound { out.append(UInt8(ascii: ",")) }
            node(Int32(index), of: task, to: &out)
        }
        out.appendASCII("],\"next_node_offset\":")
        out.appendOptionalInt(range.upperBound < task.nodes.count ? Int64(range.upperBound) : nil)
        out.append(UInt8(ascii: "}"))
    }

    /// `{resource_key, lease_id, owner, provider, task_id, node_id, metadata, acquired_at,
    /// lease_expires_at[, updated_at], fencing_token, waiters}`.
    package static func lock(_ lock: ResourceLock, withUpdatedAt: Bool, waiters: Int, to out: inout [UInt8]) {
        // Every lock request answers with this object: composed in one piece (see JSONCursor).
        let most = 400 + JSONCursor.maxBytes(lock.key) + JSONCursor.maxBytes(lock.owner)
            + (lock.provider.map(JSONCursor.maxBytes) ?? 4) + lock.metadata.count
        out.appendComposed(maxCount: most) { out in
            out.ascii("{\"resource_key\":")
            out.string(lock.key)
            out.ascii(",\"lease_id\":")
            out.quotedUUID(lock.leaseId)
            out.ascii(",\"owner\":")
            out.string(lock.owner)
            out.ascii(",\"provider\":")
            out.optionalString(lock.provider)
            out.ascii(",\"task_id\":")
            out.optionalUUID(lock.taskId)
            out.ascii(",\"node_id\":")
            out.optionalUUID(lock.nodeId)
            out.ascii(",\"metadata\":")
            out.raw(lock.metadata)
            out.ascii(",\"acquired_at\":")
            out.int(lock.acquiredAtSecs)
            out.ascii(",\"lease_expires_at\":")
            out.int(lock.expiresAtMs / 1000)
            if withUpdatedAt {
                out.ascii(",\"updated_at\":")
                out.int(lock.updatedAtSecs)
            }
            out.ascii(",\"fencing_token\":")
            out.int(lock.fencingToken)
            out.ascii(",\"waiters\":")
            out.int(Int64(waiters))
            out.byte(UInt8(ascii: "}"))
        }
    }
}
