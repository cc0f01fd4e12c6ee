import AgentdBase
/// The held resource locks: each in a numbered slot (deadlines name locks by slot), found by
/// key, by the task it names, and in key order for ListResourceLocks.
///
/// The key order is kept lazily: an acquire or release only marks it stale, and the next
/// listing sorts the held keys once. Listing is rare and acquire/release is the hot path, where
/// a sorted insert cost a binary search of String comparisons and a memmove on every grant.
package struct LockTable {
    private var slots: [ResourceLock?] = []
    private var freeSlots: [Int32] = []
    private var slotsByKey: [LockKey: Int32] = [:]
    /// Keys of the locks that name a task, so DeleteTask finds them without a scan.
    private var keysByTask: [UUID128: Set<LockKey>] = [:]
    /// Every held key in UTF-8 byte order (as SQLite's ORDER BY), when `sortedIsCurrent`.
    private var sorted: [LockKey] = []
    private var sortedIsCurrent = true

    package init() {}

    /// Locks held.
    package var count: Int { slotsByKey.count }

    /// Slots ever allocated (held or free), for checkers.
    package var slotCapacity: Int { slots.count }

    package func slot(forKey key: LockKey) -> Int32? { slotsByKey[key] }

    package func contains(key: LockKey) -> Bool { slotsByKey[key] != nil }

    package subscript(slot slot: Int32) -> ResourceLock? {
        get { slots[Int(slot)] }
    }

    package func lock(key: LockKey) -> ResourceLock? {
        slotsByKey[key].flatMap { slots[Int($0)] }
    }

    /// Keys of the held locks that name `task`.
    package func keys(namingTask task: UUID128) -> Set<LockKey> { keysByTask[task] ?? [] }

    /// Every held (key, slot), in no particular order.
    package var keysAndSlots: Dictionary<LockKey, Int32> { slotsByKey }

    /// Stores a new lock under a free slot; the key must not be held.
    package mutating func insert(_ lock: ResourceLock) -> Int32 {
        let slot: Int32
        if let reused = freeSlots.popLast() {
            slot = reused
            slots[Int(slot)] = lock
        } else {
            slot = Int32(slots.count)
            slots.append(lock)
        }
        slotsByKey[lock.lockKey] = slot
        sortedIsCurrent = false
        if let taskId = lock.taskId { keysByTask[taskId, default: []].insert(lock.lockKey) }
        return slot
    }

    /// Changes the lock in `slot` in place (its key and task stay).
    @inline(__always)
    package mutating func update(slot: Int32, _ body: (inout ResourceLock) -> Void) {
        body(&slots[Int(slot)]!)
    }

    /// Drops the lock in `slot` and returns it.
    @discardableResult
    package mutating func remove(slot: Int32) -> ResourceLock? {
        guard let lock = slots[Int(slot)] else { return nil }
        slots[Int(slot)] = nil
        slotsByKey[lock.lockKey] = nil
        freeSlots.append(slot)
        sortedIsCurrent = false
        if let taskId = lock.taskId {
            keysByTask[taskId]?.remove(lock.lockKey)
            if keysByTask[taskId]?.isEmpty == true { keysByTask[taskId] = nil }
        }
        return lock
    }

    /// Held keys starting with `prefix` (all of them for ""), in UTF-8 byte order.
    package mutating func sortedKeys(withPrefix prefix: String = "") -> ArraySlice<LockKey> {
        if !sortedIsCurrent {
            sorted = slotsByKey.keys.sorted { $0.text.utf8.lexicographicallyPrecedes($1.text.utf8) }
            sortedIsCurrent = true
        }
        guard !prefix.isEmpty else { return sorted[...] }
        var low = 0, high = sorted.count
        while low < high {
            let mid = (low + high) / 2
            if sorted[mid].text.utf8.lexicographicallyPrecedes(prefix.utf8) { low = mid + 1 } else { high = mid }
        }
        var end = low
        while end < sorted.count && sorted[end].text.utf8.starts(with: prefix.utf8) { end += 1 }
        return sorted[low..<end]
    }

    /// Held locks in key order, only those whose key starts with `prefix` when given.
    package mutating func sortedLocks(withPrefix prefix: String = "") -> [ResourceLock] {
        sortedKeys(withPrefix: prefix).compactMap { lock(key: $0) }
    }
}
