import AgentdBase
import AgentdClient

/// What a person types for a task or a node: the full id, or the short id the tables show
/// (the last 8 hex digits: ids the daemon makes begin with the time, so their ends are the
/// part that tells them apart). A short id must match exactly one task.
enum TaskRef {
    /// Digits the tables show of an id.
    static let shortLength = 8

    static func short(_ id: String) -> String {
        String(id.filter { $0 != "-" }.suffix(shortLength))
    }

    /// The full id of the task `text` names.
    static func resolve(_ text: String, on daemon: AgentdConnection) throws -> String {
        if let id = UUID128(text) { return id.string }
        let wanted = normalisedHex(text)
        guard wanted.count >= 4 else {
            throw CLIFailure("\(text) is neither a task id nor a short id (at least 4 hex digits)")
        }
        var matches: [String] = []
        var after: JSONValue? = nil
        repeat {
            var params: JSONObject = members(["limit": 1000])
            if let after { params["after"] = after }
            let page = try daemon.call("ListTasks", .object(params))
            for task in page["tasks"]?.arrayValue ?? [] {
                if let id = task["id"]?.stringValue, normalisedHex(id).hasSuffix(wanted) { matches.append(id) }
            }
            // (Not `isNull ? nil : $0`: JSONValue takes a nil literal, so that would be .null.)
            if let next = page["next_after"], !next.isNull { after = next } else { after = nil }
        } while after != nil && matches.count < 2
        switch matches.count {
        case 1: return matches[0]
        case 0: throw CLIFailure("no task id ends with \(text)")
        default: throw CLIFailure("\(text) names more than one task (\(matches.joined(separator: ", "))); give more digits")
        }
    }

    private static func normalisedHex(_ text: String) -> String {
        String(text.lowercased().filter { $0 != "-" })
    }
}

/// The nodes of one TaskStatus answer, for labelling: a node's name when it has one, else its
/// short id.
struct NodeLabels {
    private var labels: [String: String] = [:]
    private var nodes: [JSONValue] = []

    init(nodes: [JSONValue]) {
        self.nodes = nodes
        for node in nodes {
            guard let id = node["id"]?.stringValue else { continue }
            labels[id] = node["name"]?.stringValue ?? TaskRef.short(id)
        }
    }

    func label(_ id: String) -> String { labels[id] ?? TaskRef.short(id) }

    /// The id of the node `text` names: a name, a full id or a unique short id.
    func resolve(_ text: String) throws -> String {
        if let id = UUID128(text) { return id.string }
        let ids = nodes.compactMap { $0["id"]?.stringValue }
        if let named = nodes.first(where: { $0["name"]?.stringValue == text }), let id = named["id"]?.stringValue {
            return id
        }
        let wanted = text.lowercased().filter { $0 != "-" }
        let matches = ids.filter { !wanted.isEmpty && $0.filter { $0 != "-" }.hasSuffix(wanted) }
        guard matches.count == 1 else {
            throw CLIFailure(matches.isEmpty ? "the task has no node named \(text)"
                                             : "\(text) names more than one node; give more digits")
        }
        return matches[0]
    }
}

/// Statuses as a person reads them: a PENDING node that can never run because a dependency
/// FAILED (directly or through other such nodes) shows as BLOCKED. The daemon keeps its status
/// PENDING and only counts them.
func displayStatuses(_ nodes: [JSONValue]) -> [String: String] {
    var status: [String: String] = [:]
    var dependents: [String: [String]] = [:]
    var queue: [String] = []
    for node in nodes {
        guard let id = node["id"]?.stringValue else { continue }
        status[id] = node["status"]?.stringValue ?? "?"
        if status[id] == "FAILED" { queue.append(id) }
        for dependency in node["dependencies"]?.arrayValue ?? [] {
            if let dependency = dependency.stringValue { dependents[dependency, default: []].append(id) }
        }
    }
    // Blocked-ness spreads from each FAILED node to its PENDING dependents, breadth first.
    while let id = queue.popLast() {
        for dependent in dependents[id] ?? [] where status[dependent] == "PENDING" {
            status[dependent] = "BLOCKED"
            queue.append(dependent)
        }
    }
    return status
}
