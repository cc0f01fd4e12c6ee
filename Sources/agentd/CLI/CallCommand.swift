import AgentdClient
import ArgumentParser
import Glibc

/// `agentd call METHOD [PARAMS_JSON]`: one request of the raw protocol; the result printed
/// as indented JSON.
struct CallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Send one request of the raw protocol and print its result.",
        discussion: """
        Prints the result as indented JSON (--json: exactly as the daemon wrote it, on one \
        line). An error answer prints the daemon's message and reason to stderr and exits 1. \
        `agentd call DescribeInterface` lists every method with its params.

        Examples:
          agentd call Health
          agentd call TaskStatus '{"task_id":"0196c3a2-7c1e-4b7a-9c1d-2e3f4a5b6c7d"}'
        """
    )

    @Argument(help: "The method, e.g. Health, TaskStatus, AcquireResourceLock.")
    var method: String

    @Argument(help: ArgumentHelp("The params, a JSON object (default {}).", valueName: "params-json"))
    var params: String?

    @OptionGroup var connection: ConnectionOptions

    @Flag(name: .long, help: "Print the result exactly as the daemon wrote it, on one line.")
    var json = false

    func validate() throws {
        if let params, (try? JSONValue.parse(params)) == nil {
            throw ValidationError("PARAMS_JSON is not valid JSON: \(params)")
        }
    }

    func run() throws {
        let value = try params.map { try JSONValue.parse($0) } ?? .object(JSONObject())
        let daemon = try connection.connect()
        defer { daemon.close() }
        let reply = try daemon.callReply(method, value)
        print(json ? reply.resultText : reply.result.prettyText)
    }
}
