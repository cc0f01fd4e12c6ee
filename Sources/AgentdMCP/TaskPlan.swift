import AgentdClient
import Foundation

/// The people's DAG format, as `task_create` takes it: nodes named by the caller, ordered with
/// `after` (names of the nodes that must complete first). The daemon knows nodes by id only, so
/// the plan gives each node a fresh UUID, turns names into dependency ids, and refuses what
/// the daemon would refuse (and a little more: unknown fields) with the node's name in the
/// message, where an agent can act on it.
struct TaskPlan: Equatable {
    struct Node: Equatable {
        var name: String
        var id: String
        var after: [String]
        var payload: JSONValue
        var maxAttempts: Int64?
    }

    struct Invalid: Error, Equatable, CustomStringConvertible {
        let description: String
    }

    /// The daemon's limit on a node name, in bytes.
    static let maxNameBytes = 200
    static let fields: Set<String> = ["name", "after", "payload", "max_attempts"]

    var nodes: [Node]

    /// Reads and checks `nodes`; `newId` makes node ids (fresh UUID v4 strings by default).
    init(nodes value: JSONValue?, newId: () -> String = { UUID().uuidString.lowercased() }) throws {
        guard let value, !value.isNull else { nodes = []; return }
        guard let elements = value.arrayValue else {
            throw Invalid(description: "`nodes` must be an array of {name, after?, payload?, max_attempts?}")
        }
        var nodes: [Node] = []
        var indexByName: [String: Int] = [:]
        for (position, element) in elements.enumerated() {
            guard let object = element.objectValue else {
                throw Invalid(description: "node #\(position + 1) must be an object {name, after?, payload?, max_attempts?}")
            }
            guard let name = object["name"]?.stringValue, !name.isEmpty else {
                throw Invalid(description: "node #\(position + 1) needs a `name` (a non-empty string)")
            }
            guard name.utf8.count <= TaskPlan.maxNameBytes else {
                throw Invalid(description: "node name \"\(name.prefix(40))...\" is longer than \(TaskPlan.maxNameBytes) bytes")
            }
            if let unknown = object.keys.first(where: { !TaskPlan.fields.contains($0) }) {
                throw Invalid(description: "node \"\(name)\" has an unknown field `\(unknown)` (a node is {name, after?, payload?, max_attempts?})")
            }
            if indexByName[name] != nil {
                throw Invalid(description: "duplicate node name \"\(name)\": names must be unique within a task")
            }
            var after: [String] = []
            if let list = object["after"], !list.isNull {
                guard let names = list.arrayValue, names.allSatisfy({ $0.stringValue != nil }) else {
                    throw Invalid(description: "node \"\(name)\": `after` must be an array of node names")
                }
                for dependency in names.compactMap(\.stringValue) where !after.contains(dependency) {
                    after.append(dependency)
                }
            }
            var maxAttempts: Int64?
            if let attempts = object["max_attempts"], !attempts.isNull {
                guard let n = attempts.intValue, n >= 1, n <= Int64(Int32.max) else {
                    throw Invalid(description: "node \"\(name)\": `max_attempts` must be a positive integer")
                }
                maxAttempts = n
            }
            indexByName[name] = nodes.count
            nodes.append(Node(name: name, id: newId(), after: after, payload: object["payload"] ?? [:],
                              maxAttempts: maxAttempts))
        }
        for node in nodes {
            for dependency in node.after {
                if dependency == node.name {
                    throw Invalid(description: "node \"\(node.name)\" cannot come after itself")
                }
                if indexByName[dependency] == nil {
                    throw Invalid(description: "node \"\(node.name)\" comes after \"\(dependency)\", which is not a node of this task")
                }
            }
        }
        if let cycle = TaskPlan.findCycle(nodes, indexByName) {
            throw Invalid(description: "cycle: " + cycle.joined(separator: " -> ")
                          + " (each node would have to finish before itself; `after` must form a DAG)")
        }
        self.nodes = nodes
    }

    /// A cycle as the names along it, first name repeated at the end; nil for a DAG.
    private static func findCycle(_ nodes: [Node], _ indexByName: [String: Int]) -> [String]? {
        enum Mark { case unvisited, onPath, done }
        var marks = [Mark](repeating: .unvisited, count: nodes.count)
        var path: [Int] = []
        // Iterative depth-first search: a chain of a hundred thousand nodes must not overflow.
        for root in nodes.indices where marks[root] == .unvisited {
            var stack: [(node: Int, next: Int)] = [(root, 0)]
            marks[root] = .onPath
            path.append(root)
            while var top = stack.popLast() {
                let edges = nodes[top.node].after
                if top.next < edges.count {
                    let target = indexByName[edges[top.next]]!
                    top.next += 1
                    stack.append(top)
                    switch marks[target] {
                    case .onPath:
                        // Each node on the path comes after the next one: read it backwards, in the
                        // order the nodes would have to run, and close the loop.
                        // Shown from the node given first, so the same graph reads the same way.
                        let start = path.firstIndex(of: target)!
                        let loop = Array(path[start...].reversed())
                        let first = loop.firstIndex(of: loop.min()!)!
                        let rotated = Array(loop[first...] + loop[..<first])
                        return (rotated + [rotated[0]]).map { nodes[$0].name }
                    case .unvisited:
                        marks[target] = .onPath
                        path.append(target)
                        stack.append((target, 0))
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

    /// `initial_nodes` for RegisterTask.
    var nodeDefinitions: JSONValue {
        let ids = Dictionary(uniqueKeysWithValues: nodes.map { ($0.name, $0.id) })
        return .array(nodes.map { node in
            var definition = JSONObject([("id", .string(node.id)), ("name", .string(node.name))])
            definition["dependencies"] = .array(node.after.map { .string(ids[$0]!) })
            definition["payload_schema"] = node.payload
            if let maxAttempts = node.maxAttempts { definition["max_attempts"] = .int(maxAttempts) }
            return .object(definition)
        })
    }

    /// `{name: node_id}` in the order given.
    var idsByName: JSONValue {
        .object(JSONObject(nodes.map { ($0.name, .string($0.id)) }))
    }
}
