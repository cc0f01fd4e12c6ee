import AgentdBase
/// Parked requests (`wait_ms`): they are deadlines in the same heap as leases and locks, woken
/// by the change they wait for, in arrival order. Nothing polls.
extension Coordinator {
    /// Parks a request until it can be answered or `waitMs` passes; returns the waiter id.
    package func park(_ kind: Waiter.Kind, connection: UInt64, waitMs: Int64) -> UInt64 {
        let id = nextWaiterId
        nextWaiterId += 1
        let deadline = deadlines.schedule(instant(afterMs: waitMs, from: nowMs), for: .waiter(id: id))
        waiters[id] = Waiter(id: id, connection: connection, kind: kind, deadline: deadline)
        waitersByConnection[connection, default: []].append(id)
        switch kind {
        case let .acquire(task, _, _, _):
            taskSlots[Int(task)]!.acquireWaiters.append(id)
        case let .lock(request):
            lockWaiters[request.key, default: WaiterQueue()].append(id)
            lockWaiterCounts[request.key, default: 0] += 1
        case let .events(task, _, _, _):
            taskSlots[Int(task)]!.eventWaiters.append(id)
        }
        return id
    }

    /// Takes a waiter out of the books: its deadline and its place in the lock's waiter count.
    /// Its entry in a FIFO queue is skipped when reached.
    private func forget(_ id: UInt64) -> Waiter? {
        guard let waiter = waiters.removeValue(forKey: id) else { return nil }
        if !waiter.deadline.isNone { deadlines.cancel(waiter.deadline) }
        if case let .lock(request) = waiter.kind {
            let left = (lockWaiterCounts[request.key] ?? 1) - 1
            lockWaiterCounts[request.key] = left > 0 ? left : nil
            if left == 0 { lockWaiters[request.key] = nil }
        }
        return waiter
    }

    /// Ends a parked request and reports how it ended.
    package func resolveWaiter(_ id: UInt64, outcome: WaiterOutcome? = nil) {
        guard let waiter = forget(id) else { return }
        if var list = waitersByConnection[waiter.connection], let position = list.firstIndex(of: id) {
            list.remove(at: position)
            waitersByConnection[waiter.connection] = list.isEmpty ? nil : list
        }
        let ending: WaiterOutcome
        if let outcome {
            ending = outcome
        } else if case let .events(task, node, afterSeq, limit) = waiter.kind, taskSlots[Int(task)] != nil {
            ending = .events(task: task, node: node, afterSeq: afterSeq, limit: limit)
        } else {
            ending = .nothing(waiter.kind)
        }
        onWaiterResolved?(waiter, ending)
    }

    /// Hands runnable nodes to acquirers parked on the tasks that gained some; those parked on a
    /// task that just stopped being ACTIVE (completed, failed) get null now rather than at their
    /// time. (One may still park on a finished task: RetryNode or AddNodes can revive it.)
    package func serveWaiting() {
        while let slot = tasksToServe.popLast() {
            guard let task = taskSlots[Int(slot)] else { continue }
            if task.status != .active && task.ready.isEmpty {
                endAcquireWaiters(of: task)
                continue
            }
            while !task.ready.isEmpty, let id = task.acquireWaiters.popFirst() {
                guard let waiter = waiters[id], case let .acquire(_, owner, ttl, bound) = waiter.kind else { continue }
                let index = task.ready.popFirst()!
                lease(index, in: task, owner: owner, ttlSecs: ttl ?? settings.nodeTimeoutSecs,
                      boundConnection: bound ? waiter.connection : 0)
                counters.acquireAttempts += 1
                counters.acquiredNodes += 1
                resolveWaiter(id, outcome: .acquired(NodeRef(task: slot, index: index)))
            }
        }
    }

    /// A freed key goes to its oldest parked acquirer that is still waiting.
    package func grantToNextLockWaiter(_ lockKey: LockKey) {
        // The common case, nobody waiting anywhere, costs no hashing of the key.
        guard !lockWaiters.isEmpty, !locks.contains(key: lockKey) else { return }
        let key = lockKey.text
        guard var queue = lockWaiters[key] else { return }
        while let id = queue.popFirst() {
            guard let waiter = waiters[id], case let .lock(request) = waiter.kind else { continue }
            // A request naming a task that is gone cannot be granted.
            if let taskId = request.taskId, tasksById[taskId] == nil {
                lockWaiters[key] = queue
                resolveWaiter(id)
                queue = lockWaiters[key] ?? WaiterQueue()
                continue
            }
            lockWaiters[key] = queue
            // request.boundConnection already names the waiter's connection when it asked for that.
            let slot = grantLock(request)
            resolveWaiter(id, outcome: .lockGranted(slot: slot))
            return
        }
        lockWaiters[key] = nil
    }

    /// Answers ReadEvents requests parked on a task that a new event matches.
    package func wakeEventWaiters(of task: TaskRecord, for event: JournalEvent) {
        var keep = WaiterQueue()
        var wake: [UInt64] = []
        while let id = task.eventWaiters.popFirst() {
            guard let waiter = waiters[id], case let .events(_, node, afterSeq, _) = waiter.kind else { continue }
            if (node == nil || node == event.node) && event.seq > afterSeq { wake.append(id) } else { keep.append(id) }
        }
        task.eventWaiters = keep
        for id in wake { resolveWaiter(id) }
    }

    /// A connection's parked requests are answered now (null, or the events there are): its
    /// peer stopped sending, so they leave their queues.
    package func endWaiters(ofConnection connection: UInt64) {
        for id in waitersByConnection[connection] ?? [] { resolveWaiter(id) }
    }

    /// Shutdown: every parked request is answered now (null, or the events it has).
    package func endAllWaiters() {
        for id in waiters.keys.sorted() { resolveWaiter(id) }
    }

    /// Everything parked on a task ends (the task was cancelled or deleted): acquirers get null.
    package func endAcquireWaiters(of task: TaskRecord) {
        while let id = task.acquireWaiters.popFirst() { resolveWaiter(id) }
    }

    /// A connection closed: its parked requests leave their queues, and the leases and locks it
    /// took with release_on_disconnect end at once (the lease journaled, the lock handed on).
    package func connectionClosed(_ connection: UInt64) {
        for id in waitersByConnection.removeValue(forKey: connection) ?? [] {
            _ = forget(id)
        }
        guard let bindings = bindingsByConnection.removeValue(forKey: connection) else { return }
        for (binding, leaseId) in bindings {
            switch binding {
            case let .lease(ref):
                guard let task = taskSlots[Int(ref.task)], task.nodes[Int(ref.index)].lease?.id == leaseId else { continue }
                task.nodes[Int(ref.index)].lease!.boundConnection = 0
                expireLease(ref.index, in: task, reason: "disconnect")
            case let .lock(key):
                guard let slot = locks.slot(forKey: key), locks[slot: slot]?.leaseId == leaseId else { continue }
                locks.update(slot: slot) { $0.boundConnection = 0 }
                touchLock(key, held: true)
                removeLock(slot: slot)
                counters.releasedResourceLocks += 1
            }
        }
        serveWaiting()
    }
}
