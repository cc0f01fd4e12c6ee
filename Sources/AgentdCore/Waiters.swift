import AgentdBase
/// A parked request: what it waits for, and where its answer goes.
package struct Waiter {
    package enum Kind {
        case acquire(task: Int32, owner: String, leaseTTLSecs: Int64?, releaseOnDisconnect: Bool)
        case lock(LockRequest)
        case events(task: Int32, node: Int32?, afterSeq: Int64, limit: Int)
    }

    package var id: UInt64
    package var connection: UInt64
    package var kind: Kind
    package var deadline: DeadlineHandle
}

/// How a parked request ended; the server encodes the answer from it at once.
package enum WaiterOutcome {
    case acquired(NodeRef)
    case lockGranted(slot: Int32)
    case events(task: Int32, node: Int32?, afterSeq: Int64, limit: Int)
    /// Its time ran out, or its task closed: the answer is null (or no events).
    case nothing(Waiter.Kind)
}

/// A FIFO of waiter ids. Waiters that left (timed out, disconnected) stay in the queue and are
/// skipped when reached, so leaving costs O(1).
package struct WaiterQueue {
    private var items: [UInt64] = []
    private var head = 0

    package var isEmpty: Bool { head == items.count }

    package mutating func append(_ id: UInt64) { items.append(id) }

    package mutating func popFirst() -> UInt64? {
        guard head < items.count else { return nil }
        let id = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return id
    }

    /// The ids still queued (including ones that have left), oldest first.
    package var all: ArraySlice<UInt64> { items[head...] }

    package mutating func removeAll() {
        items.removeAll()
        head = 0
    }
}
