import AgentdClient
import ArgumentParser

/// `agentd graph TASK`: the DAG as Graphviz DOT or Mermaid text.
struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Print a task's DAG as Graphviz DOT or Mermaid, nodes coloured by status.",
        discussion: """
        Nodes are labelled by name (else short id) and status; an edge runs from a node to \
        each node that runs after it.
          agentd graph TASK | dot -Tsvg > dag.svg
          agentd graph TASK --format mermaid
        """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case dot, mermaid
    }

    @Argument(help: "The task: its id or short id.")
    var task: String

    @Option(help: "dot (Graphviz) or mermaid.")
    var format: Format = .dot

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let daemon = try connection.connect()
        defer { daemon.close() }
        let taskId = try TaskRef.resolve(task, on: daemon)
        let status = try daemon.call("TaskStatus", ["task_id": .string(taskId)])
        let graph = TaskGraph(status)
        print(format == .dot ? graph.dot() : graph.mermaid())
    }
}

/// One task's nodes and edges, drawn as text.
struct TaskGraph {
    struct Node {
        var label: String
        var status: String
    }

    let goal: String
    var nodes: [Node] = []
    /// (from, to): `to` runs after `from`; indices into `nodes`.
    var edges: [(Int, Int)] = []

    init(_ status: JSONValue) {
        goal = status["task"]?["goal"]?.stringValue ?? ""
        let list = status["nodes"]?.arrayValue ?? []
        let labels = NodeLabels(nodes: list)
        let statuses = displayStatuses(list)
        var index: [String: Int] = [:]
        for node in list {
            let id = node["id"]?.stringValue ?? ""
            index[id] = nodes.count
            nodes.append(Node(label: labels.label(id), status: statuses[id] ?? "?"))
        }
        for (i, node) in list.enumerated() {
            for dependency in node["dependencies"]?.arrayValue ?? [] {
                if let from = dependency.stringValue.flatMap({ index[$0] }) { edges.append((from, i)) }
            }
        }
    }

    /// Fill colours by status (ColorBrewer pastels, readable with black text).
    static func fill(_ status: String) -> String {
        switch status {
        case "COMPLETED": return "#b8e186"
        case "RUNNING": return "#92c5de"
        case "FAILED": return "#f4a582"
        case "BLOCKED": return "#fee08b"
        default: return "#e0e0e0"
        }
    }

    func dot() -> String {
        func escaped(_ text: String) -> String {
            text.replacingNewlines().replacingOccurrences("\\", "\\\\").replacingOccurrences("\"", "\\\"")
        }
        var lines = ["digraph agentd {",
                     "  label=\"\(escaped(goal))\";",
                     "  labelloc=t;",
                     "  rankdir=LR;",
                     "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];"]
        for (i, node) in nodes.enumerated() {
            // \n inside a DOT string is a line break in the label.
            lines.append("  n\(i) [label=\"\(escaped(node.label))\\n\(node.status)\", fillcolor=\"\(TaskGraph.fill(node.status))\"];")
        }
        for (from, to) in edges { lines.append("  n\(from) -> n\(to);") }
        lines.append("}")
        return lines.joined(separator: "\n")
    }

    func mermaid() -> String {
        func text(_ label: String) -> String {
            // Mermaid takes entity codes inside a quoted label.
            label.replacingNewlines().replacingOccurrences("\"", "#quot;")
        }
        var lines = ["flowchart LR"]
        for (i, node) in nodes.enumerated() {
            lines.append("  n\(i)[\"\(text(node.label))<br/>\(node.status)\"]:::\(node.status.lowercased())")
        }
        for (from, to) in edges { lines.append("  n\(from) --> n\(to)") }
        for status in ["COMPLETED", "RUNNING", "FAILED", "BLOCKED", "PENDING"] {
            lines.append("  classDef \(status.lowercased()) fill:\(TaskGraph.fill(status)),color:#000")
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    /// Plain replacement without Foundation.
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        guard !target.isEmpty, contains(target) else { return self }
        var out = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}
