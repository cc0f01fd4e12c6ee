import AgentdClient
import ArgumentParser
import Glibc

/// `agentd submit FILE`: register a task from a DAG written for people.
struct SubmitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Register a task from a DAG file whose nodes refer to each other by name.",
        discussion: """
        The file (- for stdin):
          {"goal": "ship it", "context": {"repo": "agentd"},
           "nodes": [{"name": "fetch"},
                     {"name": "build", "after": ["fetch"],
                      "payload": {"target": "release"}, "max_attempts": 3},
                     {"name": "test", "after": ["build"]}]}
        Each node may have a name (unique, at most 200 bytes), the names it runs after (a list, \
        or one name as a string), a payload (sent as its payload_schema) and max_attempts. A duplicate name, an unknown \
        name in after, or a cycle is refused before anything reaches the daemon (exit 1). \
        Prints the task id; --json prints {"task_id": ..., "nodes": {"fetch": "<node id>", ...}}.
        """
    )

    @Argument(help: ArgumentHelp("The DAG file, or - for stdin.", valueName: "file"), completion: .file(extensions: ["json"]))
    var file: String

    @Flag(name: .long, help: "Print the task id and the id of each named node as JSON.")
    var json = false

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let text = try readInput(file)
        let task: TaskDefinition
        do { task = try TaskDefinition.parse(text) } catch {
            throw CLIFailure("\(file == "-" ? "stdin" : file): \(error)")
        }
        let daemon = try connection.connect()
        defer { daemon.close() }
        let answer = try daemon.call("RegisterTask", task.registerParams)
        let taskId = answer["task_id"]?.stringValue ?? "?"
        guard json else { return print(taskId) }
        print(JSONValue.object(members(["task_id": .string(taskId), "nodes": task.graph.idsByName])).compactText)
    }

    private func readInput(_ path: String) throws -> String {
        let file: UnsafeMutablePointer<FILE>? = path == "-" ? stdin : fopen(path, "r")
        guard let file else { throw CLIFailure("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { if path != "-" { fclose(file) } }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count { break }
        }
        if ferror(file) != 0 { throw CLIFailure("cannot read \(path): \(String(cString: strerror(errno)))") }
        return String(decoding: bytes, as: UTF8.self)
    }
}
