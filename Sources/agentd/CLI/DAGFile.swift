import AgentdBase
import AgentdClient

/// A task written for people, as `agentd submit` reads it:
///
///     {"goal": "...", "context": {...},
///      "nodes": [{"name": "fetch"},
///                {"name": "build", "after": ["fetch"], "payload": {...}, "max_attempts": 3}]}
///
/// Nodes refer to each other by name; `submit` gives them ids. Everything the daemon would
/// refuse about the graph is refused here first, with the names in the message.
struct DAGFile {
    struct Node {
        var name: String?
        var after: [String] = []
        var payload: JSONValue?
        var maxAttempts: Int64?
    }

    var goal: String
    var context: JSONValue?
    var nodes: [Node]

    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// The longest name the daemon keeps, in UTF-8 bytes.
    static let maxNameBytes = 200

    static func parse(_ text: String) throws -> DAGFile {
        let value: JSONValue
        do { value = try JSONValue.parse(text) } catch { throw Problem(description: "not valid JSON: \(error)") }
        return try parse(value)
    }

    static func parse(_ value: JSONValue) throws -> DAGFile {
        guard let top = value.objectValue else { throw Problem(description: "the file must hold a JSON object") }
        if let unknown = top.keys.first(where: { !["goal", "context", "nodes"].contains($0) }) {
            throw Problem(description: "unknown key \"\(unknown)\" (a task has goal, context and nodes)")
        }
        guard let goal = top["goal"]?.stringValue else { throw Problem(description: "\"goal\" must be a string") }
        let list: [JSONValue]
        switch top["nodes"] {
        case nil, .null?: list = []
        case .array(let array)?: list = array
        default: throw Problem(description: "\"nodes\" must be an array")
        }
        var nodes: [Node] = []
        for (i, item) in list.enumerated() {
            nodes.append(try node(item, at: i))
        }
        let file = DAGFile(goal: goal, context: top["context"], nodes: nodes)
        try file.validate()
        return file
    }

    private static func node(_ item: JSONValue, at i: Int) throws -> Node {
        guard let object = item.objectValue else { throw Problem(description: "nodes[\(i)] must be an object") }
        var node = Node()
        if let name = object["name"], !name.isNull {
            guard let text = name.stringValue else { throw Problem(description: "nodes[\(i)]: \"name\" must be a string") }
            guard !text.isEmpty, text.utf8.count <= maxNameBytes else {
                throw Problem(description: "nodes[\(i)]: a name is 1 to \(maxNameBytes) bytes")
            }
            node.name = text
        }
        let label = node.name.map { "node \"\($0)\"" } ?? "nodes[\(i)]"
        if let unknown = object.keys.first(where: { !["name", "after", "payload", "max_attempts"].contains($0) }) {
            throw Problem(description: "\(label): unknown key \"\(unknown)\" (a node has name, after, payload and max_attempts)")
        }
        switch object["after"] {
        case nil, .null?: break
        case .string(let one)?: node.after = [one]
        case .array(let names)?:
            node.after = try names.map {
                guard let name = $0.stringValue else { throw Problem(description: "\(label): \"after\" holds names (strings)") }
                return name
            }
        default: throw Problem(description: "\(label): \"after\" must be a list of names")
        }
        node.payload = object["payload"]
        if let attempts = object["max_attempts"], !attempts.isNull {
            guard let n = attempts.intValue, n >= 1 else {
                throw Problem(description: "\(label): \"max_attempts\" must be a whole number of at least 1")
            }
            node.maxAttempts = n
        }
        return node
    }

    /// Unique names, `after` naming only nodes of the file, no cycle.
    func validate() throws {
        var index: [String: Int] = [:]
        for (i, node) in nodes.enumerated() {
            guard let name = node.name else { continue }
            if let first = index[name] {
                throw Problem(description: "duplicate node name \"\(name)\" (nodes[\(first)] and nodes[\(i)])")
            }
            index[name] = i
        }
        for (i, node) in nodes.enumerated() {
            for name in node.after where index[name] == nil {
                let label = node.name.map { "node \"\($0)\"" } ?? "nodes[\(i)]"
                throw Problem(description: "\(label) runs after \"\(name)\", which is no node's name")
            }
        }
        if let cycle = findCycle(index: index) {
            let path = cycle.map { "\"\($0)\"" }.joined(separator: " -> ")
            throw Problem(description: "cycle in after: \(path) (each runs after the next)")
        }
    }

    /// A cycle of names ("a", "b", "a"), or nil. Depth first, iteratively (a long chain must
    /// not overflow the stack).
    private func findCycle(index: [String: Int]) -> [String]? {
        enum Mark { case unseen, onPath, done }
        var marks = [Mark](repeating: .unseen, count: nodes.count)
        let edges: [[Int]] = nodes.map { $0.after.compactMap { index[$0] } }
        for root in nodes.indices where marks[root] == .unseen {
            var path: [(node: Int, next: Int)] = [(root, 0)]
            marks[root] = .onPath
            while let top = path.last {
                if top.next < edges[top.node].count {
                    path[path.count - 1].next += 1
                    let target = edges[top.node][top.next]
                    switch marks[target] {
                    case .onPath:
                        let start = path.firstIndex { $0.node == target }!
                        let names = path[start...].map { nodes[$0.node].name ?? "?" }
                        return names + [nodes[target].name ?? "?"]
                    case .unseen:
                        marks[target] = .onPath
                        path.append((target, 0))
                    case .done:
                        break
                    }
                } else {
                    marks[top.node] = .done
                    path.removeLast()
                }
            }
        }
        return nil
    }

    /// RegisterTask's params, with `ids[i]` the id of node i: names become dependencies and
    /// `payload` the node's payload_schema.
    func registerParams(ids: [String]) -> JSONValue {
        var index: [String: String] = [:]
        for (i, node) in nodes.enumerated() { if let name = node.name { index[name] = ids[i] } }
        var params: JSONObject = members(["goal": .string(goal)])
        if let context { params["context"] = context }
        params["initial_nodes"] = .array(nodes.enumerated().map { i, node in
            var definition: JSONObject = members(["id": .string(ids[i])])
            if let name = node.name { definition["name"] = .string(name) }
            definition["dependencies"] = .array(node.after.compactMap { index[$0].map(JSONValue.string) })
            if let payload = node.payload { definition["payload_schema"] = payload }
            if let attempts = node.maxAttempts { definition["max_attempts"] = .int(attempts) }
            return .object(definition)
        })
        return .object(params)
    }
}
