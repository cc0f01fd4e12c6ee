import AgentdBase
extension Coordinator {
    /// RegisterTask: a new task with its initial DAG, validated as a whole before anything changes.
    package func registerTask(goal: String, context: [UInt8], nodes definitions: [NodeDefinition]) throws -> UUID128 {
        expireDue()
        let taskId = ids.nextOrdered(unixMs: nowMs)
        let task = TaskRecord(id: taskId, slot: nextTaskSlot, goal: goal, context: context, createdAtMs: nowMs)
        let newNodes = try validatedNodes(definitions, joining: task)
        addTask(task)
        changes.newTasks.append(task.slot)
        append(newNodes, to: task)
        counters.registeredTasks += 1
        return taskId
    }

    /// AddNodes: grows a live task; new nodes may depend on its nodes or on each other.
    package func addNodes(task taskId: UUID128, nodes definitions: [NodeDefinition]) throws -> Range<Int32> {
        expireDue()
        defer { serveWaiting() }
        let task = try self.task(taskId)
        if task.cancelled { throw CoordinatorError.taskClosed(taskId) }
        let newNodes = try validatedNodes(definitions, joining: task)
        let first = Int32(task.nodes.count)
        append(newNodes, to: task)
        return first..<Int32(task.nodes.count)
    }

    /// RetryNode: a FAILED node goes back to PENDING with fresh attempts; its dependents unblock.
    package func retryNode(task taskId: UUID128, node nodeId: UUID128) throws {
        expireDue()
        defer { serveWaiting() }
        let (task, index) = try nodeRef(task: taskId, node: nodeId)
        if task.cancelled { throw CoordinatorError.taskClosed(taskId) }
        let status = task.nodes[Int(index)].status
        guard status == .failed else { throw CoordinatorError.cannotRetry(nodeId, from: status) }
        willChangeNode(index, in: task)
        task.nodes[Int(index)].attempts = 0
        task.nodes[Int(index)].result = nil
        returnToPending(index, in: task)
    }

    /// CancelTask: every open node fails, parked acquirers get null, no new leases.
    package func cancelTask(task taskId: UUID128) throws {
        expireDue()
        let task = try self.task(taskId)
        guard !task.cancelled else { return }
        task.cancelled = true
        changes.dirtyTasks.append(task.slot)
        task.ready = ReadyQueue()
        let cancelled = Array("{\"error\":\"task cancelled\"}".utf8)
        for index in task.nodes.indices {
            let status = task.nodes[index].status
            guard status == .pending || status == .running else { continue }
            willChangeNode(Int32(index), in: task)
            endLease(Int32(index), in: task)
            task.nodes[index].result = cancelled
            task.nodes[index].updatedAtSecs = nowMs / 1000
            setStatus(.failed, of: Int32(index), in: task)
            markDirty(Int32(index), in: task)
        }
        refile(task)
        endAcquireWaiters(of: task)
    }

    /// DeleteTask: a task that is not ACTIVE goes, with its nodes, events and the locks naming it.
    package func deleteTask(task taskId: UUID128) throws {
        expireDue()
        let task = try self.task(taskId)
        guard task.status != .active else { throw CoordinatorError.taskStillActive(taskId) }
        endAcquireWaiters(of: task)
        // Gone from lookups first, so that a lock freed below is not granted to a request naming it.
        tasksById[taskId] = nil
        for key in locks.keys(namingTask: taskId) {
            guard let slot = locks.slot(forKey: key) else { continue }
            touchLock(key, held: true)
            removeLock(slot: slot)
        }
        for (index, node) in task.nodes.enumerated() {
            nodeRefs[node.id] = nil
            endLease(Int32(index), in: task)
            totals.nodeCounts[Int(node.status.rawValue)] -= 1
        }
        totals.nodes -= task.nodes.count
        totals.events -= task.events.count
        totals.tasks -= 1
        taskIndex.remove(task.slot, status: task.indexedStatus)
        taskSlots[Int(task.slot)] = nil
        changes.deletedTasks.append(taskId)
        // The journal has no index by task (every event insert would pay for one): its rows go
        // by their ids, a lookup each, not a scan of every task's events.
        changes.deletedEvents.append(contentsOf: task.events.lazy.map(\.id))
        // ReadEvents parked on it answer with no events.
        while let id = task.eventWaiters.popFirst() { resolveWaiter(id) }
    }

    /// ListTasks: newest first, `limit` at a time, continuing after the task `after`.
    package func listTasks(status: TaskStatus?, limit: Int, after: UUID128?) throws -> [TaskRecord] {
        expireDue()
        var before: Int32? = nil
        if let after { before = try task(after).slot }
        return taskIndex.page(status: status, before: before, limit: limit).compactMap { taskSlots[Int($0)] }
    }

    /// ReadEvents: the task's events after `afterSeq` (of one node when given), at most `limit`;
    /// with `waitMs` and nothing new, the request parks until a matching event arrives.
    package enum EventsRead: Equatable {
        case ready(task: Int32, node: Int32?)
        case parked(waiter: UInt64)
    }

    package func readEvents(task taskId: UUID128, node nodeId: UUID128?, afterSeq: Int64, limit: Int,
                    connection: UInt64 = 0, waitMs: Int64 = 0) throws -> EventsRead {
        expireDue()
        let task: TaskRecord
        var node: Int32? = nil
        if let nodeId {
            let found = try nodeRef(task: taskId, node: nodeId)
            task = found.0
            node = found.1
        } else {
            task = try self.task(taskId)
        }
        if waitMs > 0 && events(of: task, node: node, afterSeq: afterSeq, limit: 1).isEmpty {
            return .parked(waiter: park(.events(task: task.slot, node: node, afterSeq: afterSeq, limit: limit),
                                        connection: connection, waitMs: waitMs))
        }
        return .ready(task: task.slot, node: node)
    }

    /// The journal positions of the events after `afterSeq`, oldest first, at most `limit`.
    package func events(of task: TaskRecord, node: Int32?, afterSeq: Int64, limit: Int) -> ArraySlice<Int32> {
        if let node {
            let positions = task.nodes[Int(node)].events
            // Positions rise with seq (seq = position + 1): binary search the first one after.
            var low = 0, high = positions.count
            while low < high {
                let mid = (low + high) / 2
                if Int64(positions[mid]) + 1 <= afterSeq { low = mid + 1 } else { high = mid }
            }
            return positions[low..<min(positions.count, low + limit)]
        }
        let start = Int(max(0, min(afterSeq, Int64(task.events.count))))
        let end = min(task.events.count, start + limit)
        return ArraySlice((start..<end).map { Int32($0) })
    }

    /// Checks a batch of node definitions in the original's order (duplicates, then each node's
    /// dependencies, then cycles) and resolves them to nodes with dependency indices.
    /// Dependencies may name nodes already in `task` or nodes of the batch.
    package func validatedNodes(_ definitions: [NodeDefinition], joining task: TaskRecord) throws -> [Node] {
        let base = Int32(task.nodes.count)
        var batchIndex: [UUID128: Int32] = [:]
        batchIndex.reserveCapacity(definitions.count)
        var nodeIds: [UUID128] = []
        nodeIds.reserveCapacity(definitions.count)
        var batchNames: Set<String> = []
        for definition in definitions {
            let id = definition.id ?? ids.nextOrdered(unixMs: nowMs)
            if nodeRefs[id] != nil || batchIndex[id] != nil {
                throw CoordinatorError.invalidDAG("duplicate node id: \(id.string)")
            }
            if let name = definition.name {
                guard task.nodesByName[name] == nil, batchNames.insert(name).inserted else {
                    throw CoordinatorError.invalidDAG("duplicate node name: \(name)")
                }
            }
            batchIndex[id] = base + Int32(nodeIds.count)
            nodeIds.append(id)
        }

        let secs = nowMs / 1000
        var nodes: [Node] = []
        nodes.reserveCapacity(definitions.count)
        for (offset, definition) in definitions.enumerated() {
            let id = nodeIds[offset]
            var dependencies: [Int32] = []
            dependencies.reserveCapacity(definition.dependencies.count)
            for dependency in definition.dependencies {
                if dependency == id {
                    throw CoordinatorError.invalidDAG("node \(id.string) cannot depend on itself")
                }
                if let index = batchIndex[dependency] {
                    dependencies.append(index)
                } else if let ref = nodeRefs[dependency], ref.task == task.slot {
                    dependencies.append(ref.index)
                } else {
                    throw CoordinatorError.invalidDAG("node \(id.string) depends on unknown node \(dependency.string)")
                }
            }
            nodes.append(Node(id: id, dependencies: IndexList(dependencies), payloadSchema: definition.payloadSchema,
                              updatedAtSecs: secs, maxAttempts: definition.maxAttempts, name: definition.name))
        }
        if let cycleNode = firstNodeOnCycle(nodes, base: base) {
            throw CoordinatorError.invalidDAG("cycle detected at node \(nodes[Int(cycleNode)].id.string)")
        }
        return nodes
    }

    /// Kahn's algorithm over the batch (existing nodes cannot depend on new ones, so a cycle can
    /// only lie inside the batch). Returns the batch offset of a node on a cycle, if any.
    private func firstNodeOnCycle(_ nodes: [Node], base: Int32) -> Int32? {
        var pending = [Int32](repeating: 0, count: nodes.count)
        var dependents = [[Int32]](repeating: [], count: nodes.count)
        for (offset, node) in nodes.enumerated() {
            for dependency in node.dependencies where dependency >= base {
                pending[offset] += 1
                dependents[Int(dependency - base)].append(Int32(offset))
            }
        }
        var queue: [Int32] = []
        for offset in nodes.indices where pending[offset] == 0 { queue.append(Int32(offset)) }
        var head = 0
        while head < queue.count {
            let offset = queue[head]
            head += 1
            for dependent in dependents[Int(offset)] {
                pending[Int(dependent)] -= 1
                if pending[Int(dependent)] == 0 { queue.append(dependent) }
            }
        }
        guard queue.count < nodes.count else { return nil }
        // Every node left either sits on a cycle or below one: walk unfinished dependencies
        // until a node repeats; that node is on a cycle.
        guard let start = nodes.indices.first(where: { pending[$0] > 0 }) else { return nil }
        var current = Int32(start)
        var seen = Set<Int32>()
        while seen.insert(current).inserted {
            let next = nodes[Int(current)].dependencies.first { $0 >= base && pending[Int($0 - base)] > 0 }!
            current = next - base
        }
        return current
    }

    /// Adds validated nodes to a task: dependency counts, dependents, ready queue, rows to insert.
    package func append(_ newNodes: [Node], to task: TaskRecord) {
        let first = Int32(task.nodes.count)
        var blockedBy: [(Int32, Int32)] = []
        for var node in newNodes {
            let index = Int32(task.nodes.count)
            var unfinished: Int32 = 0
            var blocking: Int32 = 0
            for dependency in node.dependencies where dependency < index {
                if task.nodes[Int(dependency)].status != .completed { unfinished += 1 }
                if dependency < first && contributesBlock(task.nodes[Int(dependency)]) { blocking += 1 }
                task.nodes[Int(dependency)].dependents.append(index)
            }
            if blocking > 0 { blockedBy.append((index, blocking)) }
            // Forward references inside the batch are counted when their target arrives.
            unfinished += Int32(node.dependencies.filter { $0 >= index }.count)
            node.unfinishedDependencies = unfinished
            node.persist = .inserted
            appendNode(node, to: task)
        }
        // Dependents of forward references: the dependency came later in the batch.
        for index in first..<Int32(task.nodes.count) {
            for dependency in task.nodes[Int(index)].dependencies where dependency > index {
                task.nodes[Int(dependency)].dependents.append(index)
            }
        }
        // Failed nodes upstream block the new ones, and through them the rest of the batch.
        for (index, count) in blockedBy { startBlocked(index, by: count, in: task) }
        for index in first..<Int32(task.nodes.count) where task.nodes[Int(index)].unfinishedDependencies == 0 {
            makeReady(index, in: task)
        }
        if first < Int32(task.nodes.count) {
            changes.newNodes.append((task.slot, first..<Int32(task.nodes.count)))
        }
        refile(task)
    }
}
