import AgentdBase
extension Coordinator {
    /// How an AcquireNextNode ended.
    package enum Acquisition: Equatable {
        case node(NodeRef)
        case nothing
        case parked(waiter: UInt64)
    }

    /// AcquireNextNode: leases the first runnable node of the task in registration order. With
    /// nothing runnable it answers nothing at once, or parks the request for `waitMs`.
    package func acquireNextNode(task taskId: UUID128, owner: String, leaseTTLSecs: Int64? = nil,
                         releaseOnDisconnect: Bool = false, connection: UInt64 = 0,
                         waitMs: Int64 = 0) throws -> Acquisition {
        let started = clock.monotonicMicros
        defer { counters.acquisitionLatencyMicrosTotal &+= clock.monotonicMicros &- started }
        expireDue()
        let task = try self.task(taskId)
        if task.cancelled { throw CoordinatorError.taskClosed(taskId) }
        // A ready node means nobody is parked on the task: they are served as nodes arrive.
        guard let index = task.ready.popFirst() else {
            guard waitMs > 0 else {
                counters.acquireAttempts += 1
                return .nothing
            }
            return .parked(waiter: park(.acquire(task: task.slot, owner: owner, leaseTTLSecs: leaseTTLSecs,
                                                 releaseOnDisconnect: releaseOnDisconnect),
                                        connection: connection, waitMs: waitMs))
        }
        counters.acquireAttempts += 1
        lease(index, in: task, owner: owner, ttlSecs: leaseTTLSecs ?? settings.nodeTimeoutSecs,
              boundConnection: releaseOnDisconnect ? connection : 0)
        counters.acquiredNodes += 1
        return .node(NodeRef(task: task.slot, index: index))
    }

    /// The original's form: the node, or nil when nothing is runnable.
    package func acquireNextNode(task taskId: UUID128, owner: String) throws -> NodeRef? {
        if case let .node(ref) = try acquireNextNode(task: taskId, owner: owner) { return ref }
        return nil
    }

    /// PENDING -> RUNNING under a new lease with its deadline.
    package func lease(_ index: Int32, in task: TaskRecord, owner: String, ttlSecs: Int64, boundConnection: UInt64) {
        let now = nowMs
        let expiresAt = leaseDeadline(afterSecs: ttlSecs, from: now)
        let deadline = deadlines.schedule(expiresAt, for: .nodeLease(task: task.slot, node: index))
        setStatus(.running, of: index, in: task)
        task.nodes[Int(index)].lease = Lease(id: ids.next(), owner: owner, acquiredAtSecs: now / 1000,
                                             expiresAtMs: expiresAt, deadline: deadline,
                                             boundConnection: boundConnection)
        task.nodes[Int(index)].attempts += 1
        task.nodes[Int(index)].updatedAtSecs = now / 1000
        markDirty(index, in: task)
        if boundConnection != 0 {
            bindingsByConnection[boundConnection, default: [:]][.lease(NodeRef(task: task.slot, index: index))] =
                task.nodes[Int(index)].lease!.id
        }
    }

    /// HeartbeatNode: the lease runs for another `ttl` from now.
    package func heartbeatNode(task taskId: UUID128, node nodeId: UUID128, lease leaseId: UUID128,
                       leaseTTLSecs: Int64? = nil) throws {
        expireDue()
        let (task, index) = try nodeRef(task: taskId, node: nodeId)
        guard let lease = task.nodes[Int(index)].lease, lease.id == leaseId else {
            throw CoordinatorError.nodeNotRunning(nodeId, task: taskId)
        }
        let now = nowMs
        let expiresAt = leaseDeadline(afterSecs: leaseTTLSecs ?? settings.nodeTimeoutSecs, from: now)
        deadlines.move(lease.deadline, to: expiresAt)
        task.nodes[Int(index)].lease!.expiresAtMs = expiresAt
        task.nodes[Int(index)].lease!.acquiredAtSecs = now / 1000
        task.nodes[Int(index)].updatedAtSecs = now / 1000
        markDirty(index, in: task)
        counters.heartbeats += 1
    }

    /// CommitEvent: journals an event; while the node is RUNNING only its current lease may.
    package func commitEvent(task taskId: UUID128, node nodeId: UUID128, lease leaseId: UUID128?,
                     actionType: String, payload: [UInt8]) throws -> UUID128 {
        expireDue()
        let (task, index) = try nodeRef(task: taskId, node: nodeId)
        if let lease = task.nodes[Int(index)].lease, lease.id != leaseId {
            throw CoordinatorError.requiresRunningLease(nodeId, task: taskId)
        }
        counters.committedEvents += 1
        return appendEvent(to: task, node: index, actionType: actionType, payload: payload)
    }

    /// CompleteNode: RUNNING -> COMPLETED under the current lease; dependents may become runnable.
    package func completeNode(task taskId: UUID128, node nodeId: UUID128, lease leaseId: UUID128,
                      result: [UInt8]) throws -> UUID128 {
        expireDue()
        defer { serveWaiting() }
        let (task, index) = try finishableNode(task: taskId, node: nodeId, lease: leaseId, target: .completed)
        finish(index, in: task, as: .completed, payload: result)
        for dependent in task.nodes[Int(index)].dependents {
            task.nodes[Int(dependent)].unfinishedDependencies -= 1
            if task.nodes[Int(dependent)].unfinishedDependencies == 0 && task.nodes[Int(dependent)].status == .pending {
                makeReady(dependent, in: task)
            }
        }
        counters.completedNodes += 1
        return appendEvent(to: task, node: index, actionType: "COMPLETE_NODE",
                           payload: wrapped(key: "result", payload: result))
    }

    /// FailNode: RUNNING -> FAILED under the current lease.
    package func failNode(task taskId: UUID128, node nodeId: UUID128, lease leaseId: UUID128,
                  error: [UInt8]) throws -> UUID128 {
        expireDue()
        // The task may have stopped being ACTIVE: its parked acquirers are answered.
        defer { serveWaiting() }
        let (task, index) = try finishableNode(task: taskId, node: nodeId, lease: leaseId, target: .failed)
        finish(index, in: task, as: .failed, payload: error)
        counters.failedNodes += 1
        return appendEvent(to: task, node: index, actionType: "FAIL_NODE",
                           payload: wrapped(key: "error", payload: error))
    }

    private func finishableNode(task taskId: UUID128, node nodeId: UUID128, lease leaseId: UUID128,
                                target: NodeStatus) throws -> (TaskRecord, Int32) {
        let (task, index) = try nodeRef(task: taskId, node: nodeId)
        let node = task.nodes[Int(index)]
        guard node.status == .running, let lease = node.lease, lease.id == leaseId else {
            throw CoordinatorError.cannotTransition(nodeId, from: node.status, to: target)
        }
        return (task, index)
    }

    private func finish(_ index: Int32, in task: TaskRecord, as status: NodeStatus, payload: [UInt8]) {
        endLease(index, in: task)
        task.nodes[Int(index)].result = payload
        task.nodes[Int(index)].updatedAtSecs = nowMs / 1000
        setStatus(status, of: index, in: task)
        markDirty(index, in: task)
    }

    /// `{"key":payload}` without decoding the payload.
    private func wrapped(key: StaticString, payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + key.utf8CodeUnitCount + 5)
        out.append(UInt8(ascii: "{"))
        out.append(UInt8(ascii: "\""))
        out.appendASCII(key)
        out.append(UInt8(ascii: "\""))
        out.append(UInt8(ascii: ":"))
        out.append(contentsOf: payload)
        out.append(UInt8(ascii: "}"))
        return out
    }
}
