import AgentdClient
import ArgumentParser

/// `agentd tasks`: the tasks, newest first.
struct TasksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "List the tasks, newest first.",
        discussion: """
        One row a task: its short id (the last 8 hex digits, which every TASK argument \
        accepts), status, nodes completed of all, running, failed, blocked (pending nodes \
        that can never run because a dependency failed), age and goal.
        """
    )

    @Option(help: ArgumentHelp("Only tasks in this status.", valueName: "ACTIVE|COMPLETED|FAILED|CANCELLED"),
            completion: .list(["ACTIVE", "COMPLETED", "FAILED", "CANCELLED"]))
    var status: String?

    @Option(help: "At most this many tasks (1 to 1000; default 100).")
    var limit: Int?

    @OptionGroup var output: JSONFlag
    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        if let limit, !(1...1000).contains(limit) { throw ValidationError("--limit must be between 1 and 1000") }
    }

    func run() throws {
        let daemon = try connection.connect()
        defer { daemon.close() }
        var params = JSONObject()
        if let status { params["status"] = .string(status.uppercased()) }
        if let limit { params["limit"] = .int(Int64(limit)) }
        let reply = try daemon.callReply("ListTasks", .object(params))
        if output.json { return print(reply.resultText) }

        let tasks = reply.result["tasks"]?.arrayValue ?? []
        guard !tasks.isEmpty else { return print(status.map { "no \($0.uppercased()) tasks" } ?? "no tasks") }
        let now = Time.now()
        var table = Table(["TASK", "STATUS", "DONE", "RUNNING", "FAILED", "BLOCKED", "AGE", "GOAL"],
                          rightAligned: [2, 3, 4, 5])
        for task in tasks {
            let counts = task["counts"]?.objectValue ?? JSONObject()
            func count(_ key: String) -> Int64 { counts[key]?.intValue ?? 0 }
            let total = counts.reduce(Int64(0)) { $1.key == "BLOCKED" ? $0 : $0 + ($1.value.intValue ?? 0) }
            let blocked = task["blocked_nodes"]?.intValue ?? count("BLOCKED")
            let status = task["status"]?.stringValue ?? "?"
            table.add([
                .init(TaskRef.short(task["id"]?.stringValue ?? "")),
                .init(status, Style.colour(ofStatus: status)),
                .init("\(count("COMPLETED"))/\(total)"),
                .init(zeroAsDash(count("RUNNING"))),
                .init(zeroAsDash(count("FAILED")), count("FAILED") > 0 ? .red : nil),
                .init(zeroAsDash(blocked), blocked > 0 ? .yellow : nil),
                .init(task["created_at"]?.stringValue.flatMap(Time.unixSeconds).map { Time.ago($0, now: now) } ?? "-"),
                .init(shortened(task["goal"]?.stringValue ?? "", to: 60)),
            ])
        }
        print(table.render(.stdout))
        if let next = reply.result["next_after"], !next.isNull {
            print("(more tasks: raise --limit, or agentd call ListTasks '{\"after\":\(next.compactText)}')")
        }
    }
}

func zeroAsDash(_ n: Int64) -> String { n == 0 ? "-" : "\(n)" }
