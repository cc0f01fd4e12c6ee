import AgentdClient
import ArgumentParser
import Glibc

/// `agentd events TASK`: the task's journal, one line an event; `--follow` keeps printing.
struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print a task's journal, one line an event.",
        discussion: """
        Each line: seq, local time, node, action, payload. With --follow, new events are \
        printed as they are committed (ReadEvents long-polls the daemon) until the task is no \
        longer ACTIVE or the command is interrupted. --json prints one event object a line.
        """
    )

    @Argument(help: "The task: its id or short id.")
    var task: String

    @Option(help: ArgumentHelp("Only this node's events: its name, id or short id.", valueName: "node"))
    var node: String?

    @Option(help: ArgumentHelp("Only events after this seq.", valueName: "seq"))
    var after: Int64 = 0

    @Flag(name: [.short, .long], help: "Keep printing new events until the task ends.")
    var follow = false

    @Flag(name: .long, help: "Print each event as the daemon's JSON object, one a line.")
    var json = false

    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        if after < 0 { throw ValidationError("--after must be at least 0") }
    }

    /// How long one long-poll waits; between polls the task's status is checked, so a task
    /// that ends without a new event (cancelled) is noticed within this time.
    static let pollMs: Int64 = 10_000

    func run() throws {
        let daemon = try connection.connect()
        defer { daemon.close() }
        let taskId = try TaskRef.resolve(task, on: daemon)
        var status = try daemon.call("TaskStatus", ["task_id": .string(taskId)])
        var labels = NodeLabels(nodes: status["nodes"]?.arrayValue ?? [])
        let nodeId = try node.map { try labels.resolve($0) }
        let style = Style.stdout
        var cursor = after
        while true {
            var params: JSONObject = members(["task_id": .string(taskId), "after_seq": .int(cursor), "limit": 1000])
            if let nodeId { params["node_id"] = .string(nodeId) }
            let waiting = follow && isActive(status)
            if waiting { params["wait_ms"] = .int(EventsCommand.pollMs) }
            let page: JSONValue
            do {
                page = try daemon.call("ReadEvents", .object(params))
            } catch let error as AgentdError where follow && error.reason == "TASK_NOT_FOUND" {
                return   // deleted while we followed it: it has ended
            }
            let events = page["events"]?.arrayValue ?? []
            var unknownNode = false
            for event in events {
                if json {
                    print(event.compactText)
                } else {
                    let id = event["node_id"]?.stringValue ?? ""
                    if labels.label(id) == TaskRef.short(id) && !id.isEmpty { unknownNode = true }
                    print(line(event, labels: labels, style: style))
                }
            }
            fflush(stdout)
            cursor = page["next_seq"]?.intValue ?? cursor
            if !events.isEmpty && events.count == 1000 { continue }   // more to page through
            guard follow else { return }
            if !waiting { return }
            // The task may have ended (or grown nodes we cannot name yet).
            if events.isEmpty || unknownNode || events.contains(where: { isFinal($0["action_type"]?.stringValue) }) {
                status = try daemon.call("TaskStatus", ["task_id": .string(taskId)])
                labels = NodeLabels(nodes: status["nodes"]?.arrayValue ?? [])
                if !isActive(status) {
                    // Events committed with the last change are read before stopping.
                    params["wait_ms"] = nil
                    params["after_seq"] = .int(cursor)
                    let rest = try daemon.call("ReadEvents", .object(params))
                    for event in rest["events"]?.arrayValue ?? [] {
                        print(json ? event.compactText : line(event, labels: labels, style: style))
                    }
                    return
                }
            }
        }
    }

    private func isActive(_ status: JSONValue) -> Bool {
        (status["task"]?["status"]?.stringValue ?? "ACTIVE") == "ACTIVE"
    }

    /// Events after which the task may have stopped being ACTIVE.
    private func isFinal(_ action: String?) -> Bool {
        action == "COMPLETE_NODE" || action == "FAIL_NODE" || action == "LEASE_EXPIRED"
    }

    private func line(_ event: JSONValue, labels: NodeLabels, style: Style) -> String {
        let seq = event["seq"]?.intValue.map { String($0) } ?? "-"
        let time = event["timestamp"]?.stringValue.flatMap(Time.unixSeconds).map(Time.clock) ?? "--:--:--"
        let node = labels.label(event["node_id"]?.stringValue ?? "")
        let action = event["action_type"]?.stringValue ?? "?"
        let colour: Style.Colour? = action == "COMPLETE_NODE" ? .green
            : action == "FAIL_NODE" ? .red : action == "LEASE_EXPIRED" ? .yellow : .cyan
        var payload = event["payload"]?.compactText ?? "null"
        if style.enabled { payload = shortened(payload, to: 160) }
        return "\(style.paint(seq, .dim))  \(time)  \(node)  \(style.paint(action, colour))  \(payload)"
    }
}
