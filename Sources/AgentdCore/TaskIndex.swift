import AgentdBase
/// Task slots in ascending order (oldest first), all of them and per status, so that ListTasks
/// pages newest first from any cursor by binary search instead of scanning every task.
package struct TaskIndex {
    private(set) var all: [Int32] = []
    private var byStatus: [[Int32]] = Array(repeating: [], count: TaskStatus.allCases.count)

    package mutating func insert(_ slot: Int32, status: TaskStatus) {
        TaskIndex.insert(slot, into: &all)
        TaskIndex.insert(slot, into: &byStatus[Int(status.rawValue)])
    }

    package mutating func move(_ slot: Int32, from old: TaskStatus, to new: TaskStatus) {
        TaskIndex.remove(slot, from: &byStatus[Int(old.rawValue)])
        TaskIndex.insert(slot, into: &byStatus[Int(new.rawValue)])
    }

    package mutating func remove(_ slot: Int32, status: TaskStatus) {
        TaskIndex.remove(slot, from: &all)
        TaskIndex.remove(slot, from: &byStatus[Int(status.rawValue)])
    }

    /// Up to `limit` slots older than `before` (or the newest when nil), newest first.
    package func page(status: TaskStatus?, before: Int32?, limit: Int) -> [Int32] {
        let slots = status.map { byStatus[Int($0.rawValue)] } ?? all
        var end = slots.count
        if let before { end = TaskIndex.lowerBound(before, in: slots) }
        let start = max(0, end - limit)
        return slots[start..<end].reversed()
    }

    private static func lowerBound(_ slot: Int32, in slots: [Int32]) -> Int {
        var low = 0, high = slots.count
        while low < high {
            let mid = (low + high) / 2
            if slots[mid] < slot { low = mid + 1 } else { high = mid }
        }
        return low
    }

    private static func insert(_ slot: Int32, into slots: inout [Int32]) {
        // New tasks take the highest slot: the common case is an append.
        if slots.last.map({ $0 < slot }) ?? true {
            slots.append(slot)
        } else {
            slots.insert(slot, at: lowerBound(slot, in: slots))
        }
    }

    private static func remove(_ slot: Int32, from slots: inout [Int32]) {
        let position = lowerBound(slot, in: slots)
        if position < slots.count && slots[position] == slot { slots.remove(at: position) }
    }
}

/// Lock keys kept sorted, for listing in key order and by prefix without sorting every time.
package struct SortedKeys {
    private var keys: [String] = []

    package var count: Int { keys.count }

    package mutating func insert(_ key: String) {
        let position = lowerBound(key)
        if position == keys.count || keys[position] != key { keys.insert(key, at: position) }
    }

    package mutating func remove(_ key: String) {
        let position = lowerBound(key)
        if position < keys.count && keys[position] == key { keys.remove(at: position) }
    }

    package func keys(withPrefix prefix: String) -> ArraySlice<String> {
        guard !prefix.isEmpty else { return keys[...] }
        let start = lowerBound(prefix)
        var end = start
        while end < keys.count && keys[end].utf8.starts(with: prefix.utf8) { end += 1 }
        return keys[start..<end]
    }

    /// Keys compare by their UTF-8 bytes, as the database's ORDER BY does.
    private func lowerBound(_ key: String) -> Int {
        var low = 0, high = keys.count
        while low < high {
            let mid = (low + high) / 2
            if keys[mid].utf8.lexicographicallyPrecedes(key.utf8) { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
