import AgentdBase
import Glibc

/// The people's DAG format: nodes that refer to each other by name, as `agentd submit` reads it
/// from a file and the MCP tool `task_create` takes it from an agent:
///
///     [{"name": "fetch"},
///      {"name": "build", "after": ["fetch"], "payload": {...}, "max_attempts": 3}]
///
/// `after` names the nodes that must complete first (one name may be given as a string). The
/// daemon knows nodes by id only, so the graph gives each node an id, turns names into
/// dependency ids, and refuses what the daemon would refuse about the graph (and unknown keys)
/// before anything is sent, with the node's name in the message.
public struct TaskGraph: Equatable, Sendable {
    public struct Node: Equatable, Sendable {
        /// nil only for an unnamed node, which `.optional` names allow (nothing can run after it).
        public var name: String?
        public var id: String
        /// Names of the nodes that must complete first, each once, in the order given.
        public var after: [String]
        /// Sent as the node's `payload_schema` (`{}` when absent, as the daemon's default).
        public var payload: JSONValue
        public var maxAttempts: Int64?

        public init(name: String?, id: String, after: [String] = [], payload: JSONValue = [:], maxAttempts: Int64? = nil) {
            self.name = name
            self.id = id
            self.after = after
            self.payload = payload
            self.maxAttempts = maxAttempts
        }
    }

    /// Whether every node must have a name: an agent's plan (`.required`) or a file a person
    /// wrote, where a node nothing runs after may go unnamed (`.optional`).
    public enum Names: Sendable {
        case required, optional
    }

    /// Why a graph was refused; the description is the message for whoever wrote it.
    public struct Invalid: Error, Equatable, CustomStringConvertible, Sendable {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// The daemon's limit on a node name, in UTF-8 bytes.
    public static let maxNameBytes = 200
    /// The daemon's limit on `max_attempts`.
    public static let maxAttempts = Int64(Int32.max)
    static let keys: Set<String> = ["name", "after", "payload", "max_attempts"]

    public private(set) var nodes: [Node]

    /// Reads and checks `nodes` (absent or null: no nodes). `newId` makes the node ids, in node
    /// order; by default fresh lowercase version 4 UUIDs (see `freshIds`).
    public init(nodes value: JSONValue?, names: Names = .optional, newId: () -> String = TaskGraph.freshIds()) throws {
        guard let value, !value.isNull else { nodes = []; return }
        let shape = names == .required ? "{name, after?, payload?, max_attempts?}" : "{name?, after?, payload?, max_attempts?}"
        guard let elements = value.arrayValue else { throw Invalid("`nodes` must be an array of \(shape)") }
        var nodes: [Node] = []
        nodes.reserveCapacity(elements.count)
        for (position, element) in elements.enumerated() {
            nodes.append(try TaskGraph.node(element, at: position, names: names, shape: shape, id: newId))
        }
        try TaskGraph.validate(nodes)
        self.nodes = nodes
    }

    /// An id generator for `init`: version 4 UUIDs, lowercase, random from a generator seeded by
    /// the system (getrandom), whose first 48 bits are the current time in milliseconds, as the
    /// ids the daemon makes itself, so that a task's nodes land at the end of its indexes.
    public static func freshIds() -> () -> String {
        var generator = UUIDGenerator()
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let unixMs = Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
        return { generator.nextOrdered(unixMs: unixMs).string }
    }

    // MARK: What is sent

    /// `initial_nodes` for RegisterTask: names become dependency ids, `payload` the node's
    /// `payload_schema`.
    public var initialNodes: JSONValue {
        let ids = idsByNameDictionary
        return .array(nodes.map { node in
            var definition = JSONObject([("id", .string(node.id))])
            if let name = node.name { definition["name"] = .string(name) }
            definition["dependencies"] = .array(node.after.map { .string(ids[$0]!) })
            definition["payload_schema"] = node.payload
            if let maxAttempts = node.maxAttempts { definition["max_attempts"] = .int(maxAttempts) }
            return .object(definition)
        })
    }

    /// RegisterTask's params: `{goal, context?, initial_nodes}`.
    public func registerParams(goal: String, context: JSONValue?) -> JSONValue {
        var params = JSONObject([("goal", .string(goal))])
        if let context { params["context"] = context }
        params["initial_nodes"] = initialNodes
        return .object(params)
    }

    /// `{name: node_id}` for the named nodes, in the order given.
    public var idsByName: JSONValue {
        .object(JSONObject(nodes.compactMap { node in node.name.map { ($0, .string(node.id)) } }))
    }

    private var idsByNameDictionary: [String: String] {
        var ids: [String: String] = [:]
        for node in nodes { if let name = node.name { ids[name] = node.id } }
        return ids
    }

    // MARK: Reading

    /// How a message refers to a node: by name, or by position when it has none.
    static func label(_ name: String?, at position: Int) -> String {
        name.map { "node \(quoted($0))" } ?? "nodes[\(position)]"
    }

    /// A name as JSON writes it, so that quotes and control characters inside it stay readable.
    static func quoted(_ name: String) -> String {
        JSONValue.string(name).compactText
    }

    private static func node(_ element: JSONValue, at position: Int, names: Names, shape: String,
                             id newId: () -> String) throws -> Node {
        guard let object = element.objectValue else { throw Invalid("nodes[\(position)] must be an object \(shape)") }
        var name: String?
        switch object["name"] {
        case nil, .null?:
            if names == .required { throw Invalid("nodes[\(position)] needs a `name` (a non-empty string)") }
        case .string(let text)?:
            guard !text.isEmpty else { throw Invalid("nodes[\(position)]: `name` must not be empty") }
            guard text.utf8.count <= maxNameBytes else {
                throw Invalid("node name \(quoted(String(text.prefix(40))))... (nodes[\(position)]) is longer than \(maxNameBytes) bytes")
            }
            name = text
        default:
            throw Invalid("nodes[\(position)]: `name` must be a string")
        }
        let who = label(name, at: position)
        if let unknown = object.keys.first(where: { !keys.contains($0) }) {
            throw Invalid("\(who) has an unknown key `\(unknown)` (a node is \(shape))")
        }
        var after: [String] = []
        switch object["after"] {
        case nil, .null?: break
        case .string(let one)?: after = [one]
        case .array(let list)?:
            var seen = Set<String>()
            for item in list {
                guard let dependency = item.stringValue else {
                    throw Invalid("\(who): `after` must be an array of node names (strings)")
                }
                if seen.insert(dependency).inserted { after.append(dependency) }
            }
        default: throw Invalid("\(who): `after` must be an array of node names")
        }
        var maxAttempts: Int64?
        if let attempts = object["max_attempts"], !attempts.isNull {
            guard let n = attempts.intValue, n >= 1, n <= TaskGraph.maxAttempts else {
                throw Invalid("\(who): `max_attempts` must be a positive integer (at most \(TaskGraph.maxAttempts))")
            }
            maxAttempts = n
        }
        return Node(name: name, id: newId(), after: after, payload: object["payload"] ?? [:], maxAttempts: maxAttempts)
    }

    // MARK: Checking

    /// Unique names, `after` naming only other nodes of the graph, no cycle.
    private static func validate(_ nodes: [Node]) throws {
        var indexByName: [String: Int] = [:]
        for (position, node) in nodes.enumerated() {
            guard let name = node.name else { continue }
            if let first = indexByName[name] {
                throw Invalid("duplicate node name \(quoted(name)) (nodes[\(first)] and nodes[\(position)]): names must be unique within a task")
            }
            indexByName[name] = position
        }
        var edges: [[Int]] = []
        edges.reserveCapacity(nodes.count)
        for (position, node) in nodes.enumerated() {
            edges.append(try node.after.map { dependency in
                if dependency == node.name {
                    throw Invalid("\(label(node.name, at: position)) cannot come after itself")
                }
                guard let index = indexByName[dependency] else {
                    throw Invalid("\(label(node.name, at: position)) comes after \(quoted(dependency)), which is not a node of this task")
                }
                return index
            })
        }
        if let cycle = findCycle(edges) {
            let path = (cycle + [cycle[0]]).map { quoted(nodes[$0].name ?? "?") }.joined(separator: " -> ")
            throw Invalid("cycle: \(path) (each node would have to finish before itself; `after` must form a DAG)")
        }
    }

    /// A cycle as node positions in the order they would have to run, starting with the node
    /// given first (so the same graph always reads the same way), or nil for a DAG. `edges[i]`
    /// are the nodes i runs after. Depth first and iterative: a chain of a hundred thousand
    /// nodes must not overflow the stack.
    static func findCycle(_ edges: [[Int]]) -> [Int]? {
        enum Mark { case unvisited, onPath, done }
        var marks = [Mark](repeating: .unvisited, count: edges.count)
        for root in edges.indices where marks[root] == .unvisited {
            // The path from the root, each entry with the next of its edges to follow.
            var path: [(node: Int, next: Int)] = [(root, 0)]
            marks[root] = .onPath
            while let top = path.last {
                guard top.next < edges[top.node].count else {
                    marks[top.node] = .done
                    path.removeLast()
                    continue
                }
                path[path.count - 1].next += 1
                let target = edges[top.node][top.next]
                switch marks[target] {
                case .onPath:
                    // Each node on the path runs after the next one: backwards is the order
                    // they would have to run in.
                    let start = path.firstIndex { $0.node == target }!
                    let loop = path[start...].map(\.node).reversed() as [Int]
                    let first = loop.firstIndex(of: loop.min()!)!
                    return Array(loop[first...] + loop[..<first])
                case .unvisited:
                    marks[target] = .onPath
                    path.append((target, 0))
                case .done:
                    break
                }
            }
        }
        return nil
    }
}

/// A whole task as `agentd submit` reads it: `{"goal", "context"?, "nodes"?}`, nodes as in
/// `TaskGraph` with names optional.
public struct TaskDefinition: Equatable, Sendable {
    public var goal: String
    public var context: JSONValue?
    public var graph: TaskGraph

    public init(goal: String, context: JSONValue? = nil, graph: TaskGraph) {
        self.goal = goal
        self.context = context
        self.graph = graph
    }

    public static func parse(_ text: String, newId: () -> String = TaskGraph.freshIds()) throws -> TaskDefinition {
        let value: JSONValue
        do { value = try JSONValue.parse(text) } catch { throw TaskGraph.Invalid("not valid JSON: \(error)") }
        return try parse(value, newId: newId)
    }

    public static func parse(_ value: JSONValue, newId: () -> String = TaskGraph.freshIds()) throws -> TaskDefinition {
        guard let top = value.objectValue else {
            throw TaskGraph.Invalid("a task must be a JSON object {goal, context?, nodes?}")
        }
        if let unknown = top.keys.first(where: { !["goal", "context", "nodes"].contains($0) }) {
            throw TaskGraph.Invalid("unknown key `\(unknown)` (a task is {goal, context?, nodes?})")
        }
        guard let goal = top["goal"]?.stringValue else { throw TaskGraph.Invalid("`goal` must be a string") }
        let graph = try TaskGraph(nodes: top["nodes"], names: .optional, newId: newId)
        return TaskDefinition(goal: goal, context: top["context"], graph: graph)
    }

    /// RegisterTask's params.
    public var registerParams: JSONValue { graph.registerParams(goal: goal, context: context) }
}
