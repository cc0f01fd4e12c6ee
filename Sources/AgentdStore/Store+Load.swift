import AgentdBase
import AgentdCore
/// Reading the whole state back into memory at start: the database is the truth, memory its index.
extension Store {
    package func load(into coordinator: Coordinator) throws {
        var tape = JSONTape()
        var tasks: [UUID128: TaskRecord] = [:]
        var dependencyIds: [UUID128: [[UUID128]]] = [:]

        // Every token up to the stored reservation may have been handed out before the restart.
        let reserved = try db.scalar("SELECT value FROM agentd_counters WHERE name = 'fencing_token'") ?? 0
        coordinator.restoreFencing(reserved: reserved)
        let taskRows = try db.prepare("SELECT id, goal, context, created_at, cancelled FROM global_tasks ORDER BY rowid")
        while try taskRows.step() {
            guard let id = taskRows.uuid(0) else { continue }
            let context = try compact(taskRows.bytes(2), tape: &tape) ?? JSONPayload.emptyObject
            let created = ISOTime.parse(taskRows.string(3)) ?? 0
            tasks[id] = coordinator.restoreTask(id: id, goal: taskRows.string(1), context: context, createdAtMs: created,
                                                cancelled: taskRows.int64(4) != 0)
            dependencyIds[id] = []
        }

        let timeoutMs = coordinator.settings.nodeTimeoutSecs * 1000
        let nodeRows = try db.prepare("""
            SELECT id, task_id, status, dependencies, payload_schema, result_payload, acquired_at, lease_id,
                   lease_owner, lease_expires_at, updated_at, lease_expires_at_ms, attempts, max_attempts, name
            FROM dag_nodes ORDER BY rowid
            """)
        while try nodeRows.step() {
            guard let id = nodeRows.uuid(0), let taskId = nodeRows.uuid(1), let task = tasks[taskId],
                  let status = NodeStatus(name: nodeRows.string(2)) else { continue }
            var lease: Lease? = nil
            if status == .running, let leaseId = nodeRows.uuid(7) {
                let acquiredAt = nodeRows.optionalInt64(6)
                // The row's deadline; else (oldest rows) acquired_at plus the node timeout.
                let expiresAtMs = deadlineMs(ms: nodeRows.optionalInt64(11), secs: nodeRows.optionalInt64(9))
                    ?? ((acquiredAt ?? 0) * 1000 + timeoutMs)
                lease = Lease(id: leaseId, owner: nodeRows.optionalString(8) ?? "anonymous",
                              acquiredAtSecs: acquiredAt ?? expiresAtMs / 1000, expiresAtMs: expiresAtMs,
                              deadline: .none)
            }
            let stored = RestoredNode(
                id: id, status: status, dependencies: try uuidArray(nodeRows.bytes(3), tape: &tape),
                payloadSchema: try compact(nodeRows.bytes(4), tape: &tape) ?? JSONPayload.emptyObject,
                result: nodeRows.isNull(5) ? nil : try compact(nodeRows.bytes(5), tape: &tape),
                lease: lease, updatedAtSecs: nodeRows.int64(10),
                attempts: Int32(clamping: nodeRows.optionalInt64(12) ?? 0),
                maxAttempts: Int32(clamping: nodeRows.optionalInt64(13) ?? 0),
                name: nodeRows.optionalString(14))
            coordinator.restoreNode(stored, in: task, pendingDependencies: &dependencyIds[taskId, default: []])
        }
        for (taskId, ids) in dependencyIds {
            coordinator.resolveRestoredDependencies(of: tasks[taskId]!, ids)
        }

        let eventRows = try db.prepare("""
            SELECT id, task_id, node_id, action_type, payload, timestamp FROM event_journal ORDER BY rowid
            """)
        while try eventRows.step() {
            guard let id = eventRows.uuid(0), let taskId = eventRows.uuid(1), let task = tasks[taskId],
                  let nodeId = eventRows.uuid(2) else { continue }
            coordinator.restoreEvent(in: task, id: id, node: nodeId, actionType: eventRows.string(3),
                                     payload: try compact(eventRows.bytes(4), tape: &tape) ?? Array("null".utf8),
                                     timestampMs: ISOTime.parse(eventRows.string(5)) ?? 0)
        }

        let lockRows = try db.prepare("""
            SELECT resource_key, lease_id, owner, provider, task_id, node_id, metadata, acquired_at,
                   lease_expires_at, updated_at, lease_expires_at_ms, fencing_token
            FROM resource_locks
            """)
        while try lockRows.step() {
            guard let leaseId = lockRows.uuid(1) else { continue }
            coordinator.restoreLock(ResourceLock(
                key: lockRows.string(0), leaseId: leaseId, owner: lockRows.string(2),
                provider: lockRows.optionalString(3), taskId: lockRows.uuid(4), nodeId: lockRows.uuid(5),
                metadata: try compact(lockRows.bytes(6), tape: &tape) ?? JSONPayload.emptyObject,
                acquiredAtSecs: lockRows.int64(7),
                expiresAtMs: deadlineMs(ms: lockRows.optionalInt64(10), secs: lockRows.optionalInt64(8)) ?? 0,
                updatedAtSecs: lockRows.int64(9), deadline: .none, fencingToken: lockRows.optionalInt64(11) ?? 0))
        }
        coordinator.finishRestore()
    }

    /// A deadline from its two columns: the original's whole seconds (`lease_expires_at`) and our
    /// milliseconds (`lease_expires_at_ms`). The millisecond one counts only while it names the
    /// same second: the original, run on a database we wrote, takes and renews leases and locks
    /// by updating its own column alone, and then the whole second is the truth.
    func deadlineMs(ms: Int64?, secs: Int64?) -> Int64? {
        guard let secs else { return ms }
        if let ms, ms / 1000 == secs || Coordinator.wholeSecond(atOrAfter: ms) / 1000 == secs { return ms }
        return secs * 1000
    }

    /// JSON text from a column, validated and made compact (rows written by other tools may
    /// carry whitespace); nil when the column is not valid JSON.
    private func compact(_ bytes: UnsafeRawBufferPointer, tape: inout JSONTape) throws -> [UInt8]? {
        do {
            try tape.parse(bytes)
        } catch {
            return nil
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        JSONDocument(tape: tape, input: bytes).appendCompact(0, to: &out)
        return JSONPayload.shared(out)
    }

    private func uuidArray(_ bytes: UnsafeRawBufferPointer, tape: inout JSONTape) throws -> [UUID128] {
        do {
            try tape.parse(bytes)
        } catch {
            return []
        }
        let document = JSONDocument(tape: tape, input: bytes)
        guard document.kind(0) == .array else { return [] }
        var ids: [UUID128] = []
        for element in document.elements(0) where document.kind(element) == .string {
            if let id = UUID128(document.string(element)) { ids.append(id) }
        }
        return ids
    }
}
