import AgentdBase
/// The runnable nodes of one task, smallest index (registration order) first.
/// A binary min-heap of node indices: acquire pops in O(log n) and never scans the DAG.
package struct ReadyQueue {
    private var heap: [Int32] = []

    package var isEmpty: Bool { heap.isEmpty }
    package var count: Int { heap.count }
    package var first: Int32? { heap.first }

    package mutating func insert(_ index: Int32) {
        heap.append(index)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child] < heap[parent] else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    package mutating func popFirst() -> Int32? {
        guard !heap.isEmpty else { return nil }
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            let n = heap.count
            while true {
                let left = 2 * parent + 1
                guard left < n else { break }
                var smallest = left
                if left + 1 < n && heap[left + 1] < heap[left] { smallest = left + 1 }
                guard heap[smallest] < heap[parent] else { break }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return top
    }

    /// Removes one index wherever it sits (rare: a node leaving the queue other than by acquire).
    package mutating func remove(_ index: Int32) {
        guard let position = heap.firstIndex(of: index) else { return }
        var rest = heap
        rest.remove(at: position)
        heap.removeAll(keepingCapacity: true)
        for value in rest { insert(value) }
    }
}
