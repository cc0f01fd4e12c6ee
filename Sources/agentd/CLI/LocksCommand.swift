import AgentdClient
import ArgumentParser

/// `agentd locks [PREFIX]`: the locks held now.
struct LocksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "locks",
        abstract: "List the resource locks held now, by key.",
        discussion: "One row a lock: key, owner, provider, when it expires, its fencing token and how many wait for it."
    )

    @Argument(help: "Only keys that start with this, e.g. file:src/.")
    var prefix: String?

    @OptionGroup var output: JSONFlag
    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let daemon = try connection.connect()
        defer { daemon.close() }
        var params = JSONObject()
        if let prefix { params["prefix"] = .string(prefix) }
        let reply = try daemon.callReply("ListResourceLocks", .object(params))
        if output.json { return print(reply.resultText) }
        let locks = reply.result["locks"]?.arrayValue ?? []
        guard !locks.isEmpty else { return print(prefix.map { "no locks under \($0)" } ?? "no locks") }
        let now = Time.now()
        var table = Table(["KEY", "OWNER", "PROVIDER", "EXPIRES", "TOKEN", "WAITERS"], rightAligned: [4, 5])
        for lock in locks {
            let waiters = lock["waiters"]?.intValue ?? 0
            table.add([
                .init(lock["resource_key"]?.stringValue ?? ""),
                .init(lock["owner"]?.stringValue ?? "-"),
                .init(lock["provider"]?.stringValue ?? "-"),
                .init(lock["lease_expires_at"]?.doubleValue.map { Time.until($0, now: now) } ?? "-"),
                .init(lock["fencing_token"]?.intValue.map(String.init) ?? "-"),
                .init(zeroAsDash(waiters), waiters > 0 ? .yellow : nil),
            ])
        }
        print(table.render(.stdout))
    }
}
