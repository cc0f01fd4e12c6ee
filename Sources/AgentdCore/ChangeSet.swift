import AgentdBase
/// What changed in memory since the last commit: the persistence layer turns it into rows at the end of the
/// loop turn. Entities are recorded once however often they change within the turn, and the
/// persistence layer reads their state as it is at commit time, so a write that cancels out (a lock taken
/// and released in one turn) costs nothing.
package struct ChangeSet {
    package var newTasks: [Int32] = []
    /// Node ranges appended to a task this turn: INSERT.
    package var newNodes: [(task: Int32, range: Range<Int32>)] = []
    /// Existing nodes whose row must be updated.
    package var dirtyNodes: [NodeRef] = []
    package var newEvents: [(task: Int32, index: Int32)] = []
    /// Lock keys touched this turn, with whether a row for the key was on disk before the turn.
    package var dirtyLocks: [LockKey: Bool] = [:]
    /// Tasks whose own row changed (cancelled).
    package var dirtyTasks: [Int32] = []
    /// Tasks removed with everything they own.
    package var deletedTasks: [UUID128] = []
    /// The journal events of the deleted tasks.
    package var deletedEvents: [UUID128] = []
    /// The fencing-token reservation moved to a new block.
    package var fencingReservationMoved = false

    package var isEmpty: Bool {
        newTasks.isEmpty && newNodes.isEmpty && dirtyNodes.isEmpty && newEvents.isEmpty && dirtyLocks.isEmpty
            && dirtyTasks.isEmpty && deletedTasks.isEmpty && !fencingReservationMoved
    }

    package mutating func removeAll() {
        newTasks.removeAll(keepingCapacity: true)
        newNodes.removeAll(keepingCapacity: true)
        dirtyNodes.removeAll(keepingCapacity: true)
        newEvents.removeAll(keepingCapacity: true)
        dirtyLocks.removeAll(keepingCapacity: true)
        dirtyTasks.removeAll(keepingCapacity: true)
        deletedTasks.removeAll(keepingCapacity: true)
        deletedEvents.removeAll(keepingCapacity: true)
        fencingReservationMoved = false
    }
}

extension Coordinator {
    /// The persistence layer has written `changes` and committed them: the nodes written are clean again (their
    /// next change records them anew) and a new change set begins.
    package func didCommit() {
        for (slot, range) in changes.newNodes {
            guard let task = task(slot: slot) else { continue }
            for index in range { task.nodes[Int(index)].persist = .clean }
        }
        for ref in changes.dirtyNodes {
            task(slot: ref.task)?.nodes[Int(ref.index)].persist = .clean
        }
        changes.removeAll()
    }
}
