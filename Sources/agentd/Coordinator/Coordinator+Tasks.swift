extension Coordinator {
    /// RegisterTask: a new task with its initial DAG, validated as a whole before anything changes.
    func registerTask(goal: String, context: [UInt8], nodes definitions: [NodeDefinition]) throws -> UUID128 {
        expireDue()
        let taskId = ids.next()
        let task = TaskRecord(id: taskId, slot: nextTaskSlot, goal: goal, context: context, createdAtMs: nowMs)
        let newNodes = try validatedNodes(definitions, joining: task)
        addTask(task)
        changes.newTasks.append(task.slot)
        append(newNodes, to: task)
        counters.registeredTasks += 1
        return taskId
    }

    /// Checks a batch of node definitions in the original's order (duplicates, then each node's
    /// dependencies, then cycles) and resolves them to nodes with dependency indices.
    /// Dependencies may name nodes already in `task` or nodes of the batch.
    func validatedNodes(_ definitions: [NodeDefinition], joining task: TaskRecord) throws -> [Node] {
        let base = Int32(task.nodes.count)
        var batchIndex: [UUID128: Int32] = [:]
        batchIndex.reserveCapacity(definitions.count)
        var nodeIds: [UUID128] = []
        nodeIds.reserveCapacity(definitions.count)
        for definition in definitions {
            let id = definition.id ?? ids.next()
            if nodeRefs[id] != nil || batchIndex[id] != nil {
                throw CoordinatorError.invalidDAG("duplicate node id: \(id.string)")
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
            nodes.append(Node(id: id, dependencies: dependencies, payloadSchema: definition.payloadSchema,
                              updatedAtSecs: secs, maxAttempts: definition.maxAttempts))
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
    func append(_ newNodes: [Node], to task: TaskRecord) {
        let first = Int32(task.nodes.count)
        task.nodes.reserveCapacity(task.nodes.count + newNodes.count)
        for var node in newNodes {
            let index = Int32(task.nodes.count)
            var unfinished: Int32 = 0
            for dependency in node.dependencies where dependency < index {
                if task.nodes[Int(dependency)].status != .completed { unfinished += 1 }
                task.nodes[Int(dependency)].dependents.append(index)
            }
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
        for index in first..<Int32(task.nodes.count) where task.nodes[Int(index)].unfinishedDependencies == 0 {
            task.ready.insert(index)
        }
        if first < Int32(task.nodes.count) {
            changes.newNodes.append((task.slot, first..<Int32(task.nodes.count)))
        }
    }
}
