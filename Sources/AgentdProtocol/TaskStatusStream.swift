import AgentdBase
import AgentdCore
/// A TaskStatus answer too big to build in one loop turn without stalling every other client:
/// the head (task summary and counts) is written at once, then the nodes in slices, one slice
/// a turn, from a `TaskSnapshot` taken when the request arrived. The answer is the task as it
/// was at that instant (the head and every node), however the task changes meanwhile, and
/// each of its slices leaves only after the turn's COMMIT, like any answer.
package final class TaskStatusStream {
    /// Answers of tasks with at most this many nodes are built at once; bigger ones a slice of this many nodes (about 350 KB) a turn.
    package static let sliceNodes: Int32 = 1024

    private let coordinator: Coordinator
    private let snapshot: TaskSnapshot
    package private(set) var isFinished = false

    init(coordinator: Coordinator, task: TaskRecord, into out: inout [UInt8]) {
        self.coordinator = coordinator
        snapshot = coordinator.beginSnapshot(of: task)
        ResultEncoding.taskStatusHead(task, to: &out)
    }

    /// Appends up to `maxNodes` nodes (and the end of the answer after the last one); true
    /// when the answer is complete.
    @discardableResult
    package func appendSlice(maxNodes: Int32 = TaskStatusStream.sliceNodes, to out: inout [UInt8]) -> Bool {
        guard !isFinished else { return true }
        let task = snapshot.task
        let left = snapshot.nodeCount - snapshot.next
        let end = snapshot.next + min(left, max(maxNodes, 1))
        var index = snapshot.next
        while index < end {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            ResultEncoding.node(snapshot.node(index), of: task, to: &out)
            index += 1
        }
        snapshot.advance(to: end)
        guard end == snapshot.nodeCount else { return false }
        out.appendASCII("]}}\n")
        finish()
        return true
    }

    /// The reader went away: the snapshot is dropped.
    package func cancel() { finish() }

    private func finish() {
        guard !isFinished else { return }
        isFinished = true
        coordinator.endSnapshot(snapshot)
    }
}
