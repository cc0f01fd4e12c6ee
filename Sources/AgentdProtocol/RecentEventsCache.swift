import AgentdBase
import AgentdCore

/// Every acquire of a task sends the task's last events again (the context's `event_journal`),
/// so their JSON is kept from one acquire to the next, per task, and dropped once an event
/// leaves the window. The encoder owns it: the model keeps only the events themselves.
package final class RecentEventsCache {
    private struct Window {
        /// The position in the task's journal of `encoded[0]`.
        var start = 0
        var encoded: [[UInt8]] = []
    }

    private var windows: [UUID128: Window] = [:]

    package init() {}

    /// Appends the task's last `limit` events, oldest first, comma-separated.
    package func appendRecentEvents(of task: TaskRecord, limit: Int, to out: inout [UInt8]) {
        let first = max(0, task.events.count - limit)
        // The window is changed where it lies in the dictionary: one lookup, and its arrays are
        // not copied (taking it out and putting it back cost two hashes and a delete per acquire).
        RecentEventsCache.append(task, from: first, window: &windows[task.id, default: Window(start: first)], to: &out)
    }

    private static func append(_ task: TaskRecord, from first: Int, window: inout Window, to out: inout [UInt8]) {
        // Events that left the window go; the window never starts past the first one wanted.
        if window.start < first {
            window.encoded.removeFirst(min(first - window.start, window.encoded.count))
            window.start = first
        } else if window.start > first {
            window = Window(start: first)
        }
        while window.start + window.encoded.count < task.events.count {
            var json: [UInt8] = []
            ResultEncoding.sortedEvent(task.events[window.start + window.encoded.count], of: task, to: &json)
            window.encoded.append(json)
        }
        for (offset, json) in window.encoded.enumerated() {
            if offset > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: json)
        }
    }

    /// A deleted task's window goes with it.
    package func forget(_ task: UUID128) {
        windows[task] = nil
    }
}
