import AgentdClient
import ArgumentParser

/// `agentd status TASK`: one task, its header and then its nodes.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show one task and its nodes.",
        discussion: """
        TASK is a task id or the short id `agentd tasks` shows. Each node: its name (or short \
        id), status (BLOCKED: pending, but a dependency failed), lease owner, attempts (of \
        max_attempts), when its lease expires, and the nodes it runs after.
        """
    )

    @Argument(help: "The task: its id or short id.")
    var task: String

    @OptionGroup var output: JSONFlag
    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let daemon = try connection.connect()
        defer { daemon.close() }
        let taskId = try TaskRef.resolve(task, on: daemon)
        let reply = try daemon.callReply("TaskStatus", ["task_id": .string(taskId)])
        if output.json { return print(reply.resultText) }
        print(StatusView(reply.result, style: .stdout).render())
    }
}

/// The text of `agentd status`.
struct StatusView {
    let answer: JSONValue
    let style: Style

    init(_ answer: JSONValue, style: Style) {
        self.answer = answer
        self.style = style
    }

    func render() -> String {
        let task = answer["task"] ?? .null
        let nodes = answer["nodes"]?.arrayValue ?? []
        let now = Time.now()
        let status = task["status"]?.stringValue ?? "?"
        var lines: [String] = []
        lines.append("\(style.paint("task", .bold))     \(task["id"]?.stringValue ?? "?")  \(style.paint(status, Style.colour(ofStatus: status)))")
        lines.append("\(style.paint("goal", .bold))     \(task["goal"]?.stringValue ?? "")")
        if let context = task["context"], context != .object(JSONObject()), !context.isNull {
            lines.append("\(style.paint("context", .bold))  \(shortened(context.compactText, to: 200))")
        }
        let created = task["created_at"]?.stringValue.flatMap(Time.unixSeconds).map { Time.ago($0, now: now) } ?? "-"
        lines.append("\(style.paint("created", .bold))  \(created)")
        lines.append("\(style.paint("nodes", .bold))    \(summary(nodes.count))")
        guard !nodes.isEmpty else { return lines.joined(separator: "\n") }

        let labels = NodeLabels(nodes: nodes)
        let statuses = displayStatuses(nodes)
        var table = Table(["NODE", "STATUS", "OWNER", "ATTEMPTS", "EXPIRES", "AFTER"], rightAligned: [3])
        for node in nodes {
            let id = node["id"]?.stringValue ?? ""
            let status = statuses[id] ?? "?"
            let attempts = node["attempts"]?.intValue.map { n in node["max_attempts"]?.intValue.map { "\(n)/\($0)" } ?? "\(n)" } ?? "-"
            let expires = node["lease_expires_at"]?.doubleValue.map { Time.until($0, now: now) } ?? "-"
            let after = (node["dependencies"]?.arrayValue ?? []).compactMap(\.stringValue).map(labels.label)
            table.add([
                .init(shortened(labels.label(id), to: 40)),
                .init(status, Style.colour(ofStatus: status)),
                .init(node["lease_owner"]?.stringValue ?? "-"),
                .init(attempts),
                .init(expires),
                .init(after.isEmpty ? "-" : shortened(after.joined(separator: ", "), to: 60)),
            ])
        }
        return lines.joined(separator: "\n") + "\n\n" + table.render(style)
    }

    /// "5: 2 completed, 1 running, 2 pending (1 blocked)".
    private func summary(_ total: Int) -> String {
        let counts = answer["counts"]?.objectValue ?? JSONObject()
        let blocked = answer["task"]?["blocked_nodes"]?.intValue ?? counts["BLOCKED"]?.intValue ?? 0
        var parts: [String] = []
        for key in ["COMPLETED", "RUNNING", "PENDING", "FAILED"] {
            guard let n = counts[key]?.intValue, n > 0 else { continue }
            var part = "\(n) \(key.lowercased())"
            if key == "PENDING" && blocked > 0 { part += " (\(blocked) blocked)" }
            parts.append(part)
        }
        return parts.isEmpty ? "\(total)" : "\(total): " + parts.joined(separator: ", ")
    }
}
