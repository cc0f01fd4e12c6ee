import AgentdBase
/// A task's nodes as they were at one instant, for an answer that is built over several loop
/// turns (a TaskStatus of a big task), while the Coordinator keeps changing the task.
///
/// Copy-on-write at the grain of one node: taking the snapshot copies nothing; the first time
/// a node that the reader has not reached yet is about to change, the Coordinator keeps its
/// old value here (`willChangeNode`). Nodes added after the snapshot are not part of it. So a
/// snapshot costs memory only for the nodes that change while it is read, and no writer ever
/// waits for a reader, nor pays more than one node copy for it.
package final class TaskSnapshot {
    package let task: TaskRecord
    /// Nodes 0..<nodeCount belong to the snapshot.
    package let nodeCount: Int32
    /// Nodes below this index have been read; their later changes need no keeping.
    package var next: Int32
    /// Old values of the nodes that changed since the snapshot was taken, before being read.
    private var preImages: [Int32: Node] = [:]

    init(task: TaskRecord, from first: Int32) {
        self.task = task
        self.nodeCount = Int32(task.nodes.count)
        self.next = min(first, Int32(task.nodes.count))
    }

    /// The node as it was when the snapshot was taken.
    package func node(_ index: Int32) -> Node {
        preImages[index] ?? task.nodes[Int(index)]
    }

    /// Marks nodes below `index` read; their pre-images can go.
    package func advance(to index: Int32) {
        if !preImages.isEmpty {
            for i in next..<index { preImages[i] = nil }
        }
        next = index
    }

    /// How many node pre-images are kept (for tests and checkers).
    package var keptCount: Int { preImages.count }

    func keep(_ index: Int32) {
        guard index >= next, index < nodeCount, preImages[index] == nil else { return }
        var copy = task.nodes[Int(index)]
        // The lease is a class changed in place (heartbeats): keep a copy of it too.
        if let lease = copy.lease {
            copy.lease = Lease(id: lease.id, owner: lease.owner, acquiredAtSecs: lease.acquiredAtSecs,
                               expiresAtMs: lease.expiresAtMs, deadline: lease.deadline,
                               boundConnection: lease.boundConnection)
        }
        preImages[index] = copy
    }
}

extension Coordinator {
    /// A snapshot of the task's nodes from `first` on, kept consistent until `endSnapshot`.
    package func beginSnapshot(of task: TaskRecord, from first: Int32 = 0) -> TaskSnapshot {
        let snapshot = TaskSnapshot(task: task, from: first)
        task.snapshots.append(snapshot)
        return snapshot
    }

    package func endSnapshot(_ snapshot: TaskSnapshot) {
        snapshot.task.snapshots.removeAll { $0 === snapshot }
    }

    /// Call before changing anything a node shows (status, result, lease, times, attempts):
    /// a snapshot being read keeps the old value.
    @inline(__always)
    package func willChangeNode(_ index: Int32, in task: TaskRecord) {
        guard !task.snapshots.isEmpty else { return }
        for snapshot in task.snapshots { snapshot.keep(index) }
    }
}
