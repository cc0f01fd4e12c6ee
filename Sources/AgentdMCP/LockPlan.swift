import AgentdBase
import AgentdClient

/// How `lock` orders its keys and explains a conflict.
enum LockPlan {
    /// Unique keys in sorted (byte) order: every session takes overlapping sets in the same
    /// order, so two of them waiting on each other's keys cannot deadlock.
    static func order(_ keys: [String]) -> [String] {
        Array(Set(keys)).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    /// "held by X until T (in N s): ..." and what to do about it.
    static func conflictHint(_ conflicts: [JSONValue], waited: Bool, now: Int64) -> String {
        let parts: [String] = conflicts.map { conflict in
            let key = conflict["key"]?.stringValue ?? "?"
            guard let owner = conflict["owner"]?.stringValue else { return "\(key) was freed just now" }
            var text = "\(key) is held by \(owner)"
            if let expires = conflict["expires_at"]?.intValue {
                text += " until \(ISOSeconds.format(expires)) (in \(max(expires - now, 0)) s unless renewed)"
            }
            if let reason = conflict["reason"]?.stringValue { text += " for \"\(reason)\"" }
            return text
        }
        let next = waited
            ? "Nothing was taken. Work on something else, or call lock again with wait_s (up to 50) to keep waiting."
            : "Nothing was taken. Work on something else, or call lock again with wait_s (up to 50) to wait for it."
        return parts.joined(separator: "; ") + ". " + next
    }
}

/// TaskStatus, as the tools show it: a header (status, counts, blocked), one small object a
/// node, and the names of the nodes.
struct TaskSummary {
    var header: JSONObject
    var nodes: [JSONValue]
    var names: [String: String]
    var status: String
    var counts: JSONValue

    init(_ answer: JSONValue, now: Int64) {
        let task = answer["task"] ?? [:]
        status = task["status"]?.stringValue ?? "ACTIVE"
        counts = answer["counts"] ?? [:]
        let blocked = task["blocked_nodes"]?.intValue ?? counts["BLOCKED"]?.intValue ?? 0
        header = JSONObject([("task_id", task["id"] ?? .null), ("goal", task["goal"] ?? .null), ("status", .string(status))])
        header["counts"] = counts
        header["blocked_nodes"] = .int(blocked)
        var names: [String: String] = [:]
        nodes = (answer["nodes"]?.arrayValue ?? []).map { node in
            let id = node["id"]?.stringValue ?? ""
            let name = node["name"]?.stringValue
            if let name { names[id] = name }
            let running = node["status"]?.stringValue == "RUNNING"
            var object = JSONObject([("name", name.map { .string($0) } ?? .null), ("node_id", .string(id)),
                                     ("status", node["status"] ?? .null)])
            object["owner"] = running ? node["lease_owner"] ?? .null : .null
            if running, let expires = node["lease_expires_at"]?.intValue {
                object["expires_in_s"] = .int(max(expires - now, 0))
            } else {
                object["expires_in_s"] = .null
            }
            if let attempts = node["attempts"]?.intValue, attempts > 0 { object["attempts"] = .int(attempts) }
            return .object(object)
        }
        self.names = names
    }

    private func count(_ status: String) -> Int64 { counts[status]?.intValue ?? 0 }

    var sentence: String {
        let parts = ["PENDING", "RUNNING", "COMPLETED", "FAILED"].compactMap { s in count(s) > 0 ? "\(count(s)) \(s)" : nil }
        var text = "Task is \(status)" + (parts.isEmpty ? " with no nodes" : ": " + parts.joined(separator: ", "))
        let blocked = header["blocked_nodes"]?.intValue ?? 0
        if blocked > 0 { text += " (\(blocked) PENDING blocked behind a failed node)" }
        return text + "."
    }

    /// What an agent should do when work_next found nothing to take.
    var hintWhenNothingRunnable: String {
        switch status {
        case "COMPLETED": return "The task is COMPLETED: every node is done. Stop calling work_next for it."
        case "CANCELLED": return "The task was CANCELLED. Stop working on it."
        case "FAILED": return "The task is FAILED: a node failed and nothing left can run. Stop, or report the failure (events shows why)."
        default:
            if count("RUNNING") > 0 {
                return "\(count("RUNNING")) node(s) are running elsewhere and the rest wait for them: call work_next again (it waits up to wait_s)."
            }
            if count("PENDING") == 0 { return "The task has no nodes to run yet: call work_next again later, or stop." }
            return "Nothing is runnable yet: call work_next again."
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.000Z` from Unix seconds, as the daemon writes its timestamps.
enum ISOSeconds {
    static func format(_ seconds: Int64) -> String {
        var out: [UInt8] = []
        ISOTime.append(unixMs: seconds * 1000, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
