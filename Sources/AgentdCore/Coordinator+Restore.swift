import AgentdBase
/// A node as it is read back from the database at start.
package struct RestoredNode {
    package var id: UUID128
    package var status: NodeStatus
    package var dependencies: [UUID128]
    package var payloadSchema: [UInt8]
    package var result: [UInt8]?
    package var lease: Lease?
    package var updatedAtSecs: Int64
    package var attempts: Int32
    package var maxAttempts: Int32
    package var name: String?

    package init(id: UUID128, status: NodeStatus, dependencies: [UUID128], payloadSchema: [UInt8], result: [UInt8]?,
                 lease: Lease?, updatedAtSecs: Int64, attempts: Int32, maxAttempts: Int32, name: String? = nil) {
        self.name = name
        self.id = id
        self.status = status
        self.dependencies = dependencies
        self.payloadSchema = payloadSchema
        self.result = result
        self.lease = lease
        self.updatedAtSecs = updatedAtSecs
        self.attempts = attempts
        self.maxAttempts = maxAttempts
    }
}

/// Rebuilding memory from disk at start. The persistence layer calls these in table order (tasks, nodes in
/// rowid order, events in rowid order, locks), then `finishRestore`, which derives every index
/// (dependency counts, dependents, ready queues, deadlines) and expires what ran out while the
/// daemon was down. Nothing here is recorded as a change: it is already on disk.
extension Coordinator {
    package func restoreTask(id: UUID128, goal: String, context: [UInt8], createdAtMs: Int64, cancelled: Bool) -> TaskRecord {
        let task = TaskRecord(id: id, slot: nextTaskSlot, goal: goal, context: context, createdAtMs: createdAtMs)
        task.cancelled = cancelled
        addTask(task)
        return task
    }

    /// Dependencies are resolved in `finishRestore`, since a node may depend on a later row.
    package func restoreNode(_ stored: RestoredNode, in task: TaskRecord, pendingDependencies: inout [[UUID128]]) {
        var node = Node(id: stored.id, status: stored.status, payloadSchema: stored.payloadSchema,
                        updatedAtSecs: stored.updatedAtSecs, attempts: stored.attempts,
                        maxAttempts: stored.maxAttempts, name: stored.name)
        node.result = stored.result
        node.lease = stored.status == .running ? stored.lease : nil
        // Rows written before deadlines were whole seconds may hold any millisecond: a restart
        // gives them the same whole-second deadline as an acquire or a heartbeat would.
        if let lease = node.lease { lease.expiresAtMs = Coordinator.wholeSecond(atOrAfter: lease.expiresAtMs) }
        node.persist = .clean
        appendNode(node, to: task)
        pendingDependencies.append(stored.dependencies)
    }

    /// Resolves the dependencies of a task's nodes (given in node order).
    package func resolveRestoredDependencies(of task: TaskRecord, _ dependencyIds: [[UUID128]]) {
        for (offset, ids) in dependencyIds.enumerated() {
            let index = Int32(offset)
            var dependencies: [Int32] = []
            dependencies.reserveCapacity(ids.count)
            for id in ids {
                // A dependency outside this task cannot be satisfied; keep it unfinished for ever.
                guard let ref = nodeRefs[id], ref.task == task.slot else {
                    task.nodes[offset].unfinishedDependencies += 1
                    continue
                }
                dependencies.append(ref.index)
                task.nodes[Int(ref.index)].dependents.append(index)
            }
            task.nodes[offset].dependencies = IndexList(dependencies)
        }
        for offset in task.nodes.indices {
            let unfinished = task.nodes[offset].dependencies.filter { task.nodes[Int($0)].status != .completed }.count
            task.nodes[offset].unfinishedDependencies += Int32(unfinished)
            switch task.nodes[offset].status {
            case .pending where task.nodes[offset].unfinishedDependencies == 0 && !task.cancelled:
                task.ready.insert(Int32(offset))
            case .running:
                if var lease = task.nodes[offset].lease {
                    lease.deadline = deadlines.schedule(lease.expiresAtMs,
                                                        for: .nodeLease(task: task.slot, node: Int32(offset)))
                    task.nodes[offset].lease = lease
                } else {
                    // RUNNING without a lease is unusable; give it back at once.
                    returnToPending(Int32(offset), in: task)
                }
            default:
                break
            }
        }
        for offset in task.nodes.indices where task.nodes[offset].status == .failed {
            propagateBlock(from: Int32(offset), delta: 1, in: task)
        }
        refile(task)
    }

    package func restoreEvent(in task: TaskRecord, id: UUID128, node nodeId: UUID128, actionType: String,
                      payload: [UInt8], timestampMs: Int64) {
        guard let ref = nodeRefs[nodeId], ref.task == task.slot else { return }
        task.events.append(JournalEvent(id: id, seq: Int64(task.events.count) + 1, node: ref.index,
                                        actionType: actionType, payload: payload, timestampMs: timestampMs))
        task.nodes[Int(ref.index)].events.append(Int32(task.events.count - 1))
        totals.events += 1
    }

    package func restoreLock(_ lock: ResourceLock) {
        var lock = lock
        lock.expiresAtMs = Coordinator.wholeSecond(atOrAfter: lock.expiresAtMs)
        fencingCounter = max(fencingCounter, lock.fencingToken)
        let slot = insertLock(lock)
        let deadline = deadlines.schedule(lock.expiresAtMs, for: .lock(slot: slot))
        updateLock(slot: slot) { $0.deadline = deadline }
    }

    /// Expires what ran out while the daemon was down; those changes are written at the first commit.
    package func finishRestore() {
        expireDue()
    }
}

extension Coordinator {
    /// The fencing reservation as it was persisted: tokens go on from above it, so none handed out
    /// before the restart is handed out again.
    package func restoreFencing(reserved: Int64) {
        fencingCounter = reserved
        fencingReserved = reserved
    }
}
