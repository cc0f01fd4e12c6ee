import AgentdBase
/// What a deadline is for. Small and copyable so the queue stores it inline.
package enum DeadlineOwner: Equatable {
    /// The lease of node `node` of the task in slot `task`.
    case nodeLease(task: Int32, node: Int32)
    /// The lock in slot `slot` of the lock table.
    case lock(slot: Int32)
    /// A parked request waiting for a node or a lock (`id` is the waiter's number).
    case waiter(id: UInt64)
}

/// A handle to one scheduled deadline, kept by its owner so the deadline can be moved or
/// cancelled in O(log n) instead of being left behind as a stale entry.
package struct DeadlineHandle: Equatable {
    fileprivate(set) var slot: Int32
    package static let none = DeadlineHandle(slot: -1)
    package var isNone: Bool { slot < 0 }
}

/// A min-heap of deadlines (Unix ms) with handles: schedule, move, cancel and pop the due ones.
/// One libuv timer is armed for `earliest`; nothing is ever swept.
package struct DeadlineQueue {
    private struct Entry {
        package var deadlineMs: Int64
        package var owner: DeadlineOwner
        package var heapPosition: Int32   // -1 when the slot is free
    }

    private var entries: [Entry] = []
    private var freeSlots: [Int32] = []
    private var heap: [Int32] = []   // slots, ordered by deadline

    package var count: Int { heap.count }
    package var earliest: Int64? { heap.first.map { entries[Int($0)].deadlineMs } }

    package mutating func schedule(_ deadlineMs: Int64, for owner: DeadlineOwner) -> DeadlineHandle {
        let slot: Int32
        let entry = Entry(deadlineMs: deadlineMs, owner: owner, heapPosition: Int32(heap.count))
        if let reused = freeSlots.popLast() {
            slot = reused
            entries[Int(slot)] = entry
        } else {
            slot = Int32(entries.count)
            entries.append(entry)
        }
        heap.append(slot)
        siftUp(heap.count - 1)
        return DeadlineHandle(slot: slot)
    }

    package func deadline(of handle: DeadlineHandle) -> Int64 {
        entries[Int(handle.slot)].deadlineMs
    }

    package mutating func move(_ handle: DeadlineHandle, to deadlineMs: Int64) {
        let slot = Int(handle.slot)
        let old = entries[slot].deadlineMs
        entries[slot].deadlineMs = deadlineMs
        let position = Int(entries[slot].heapPosition)
        if deadlineMs < old { siftUp(position) } else { siftDown(position) }
    }

    package mutating func cancel(_ handle: DeadlineHandle) {
        guard !handle.isNone else { return }
        let slot = Int(handle.slot)
        let position = Int(entries[slot].heapPosition)
        precondition(position >= 0, "deadline cancelled twice")
        let last = heap.count - 1
        if position != last {
            swapAt(position, last)
        }
        heap.removeLast()
        entries[slot].heapPosition = -1
        freeSlots.append(Int32(slot))
        if position != last {
            siftDown(position)
            siftUp(position)
        }
    }

    /// Removes and returns the owner of the earliest deadline if it is at or before `nowMs`.
    package mutating func popDue(nowMs: Int64) -> DeadlineOwner? {
        guard let top = heap.first, entries[Int(top)].deadlineMs <= nowMs else { return nil }
        let owner = entries[Int(top)].owner
        cancel(DeadlineHandle(slot: top))
        return owner
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        entries[Int(heap[a])].heapPosition = Int32(a)
        entries[Int(heap[b])].heapPosition = Int32(b)
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        let x = entries[Int(heap[a])], y = entries[Int(heap[b])]
        // Equal deadlines leave in slot order only by accident; callers do not rely on it.
        return x.deadlineMs < y.deadlineMs
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(child, parent) else { return }
            swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        let n = heap.count
        while true {
            let left = 2 * parent + 1
            guard left < n else { return }
            var smallest = left
            if left + 1 < n && less(left + 1, left) { smallest = left + 1 }
            guard less(smallest, parent) else { return }
            swapAt(parent, smallest)
            parent = smallest
        }
    }
}
