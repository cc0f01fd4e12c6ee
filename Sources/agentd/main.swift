import AgentdBase
import AgentdCore
import AgentdStore
import AgentdProtocol
import AgentdClient
import AgentdMCP
import Glibc

/// agentd: `agentd [serve] [flags]` runs the daemon; `agentd call METHOD [PARAMS_JSON]` is its client.
let arguments = Array(CommandLine.arguments.dropFirst())
let environment = AgentdEnvironment.processEnvironment()

let command = arguments.first ?? "serve"
switch command {
case "help", "-h", "--help":
    print(usage)
    exit(0)
case "serve", _ where command.hasPrefix("--"):
    let flags = command == "serve" ? Array(arguments.dropFirst()) : arguments
    // Asking for help is never an error, wherever the flag comes.
    if flags.contains("--help") || flags.contains("-h") {
        print(usage)
        exit(0)
    }
    do {
        let config = try Configuration.load(arguments: flags, environment: environment, allowServeFlags: true)
        exit(Daemon.run(config))
    } catch {
        fputs("agentd: \(error)\n", stderr)
        exit(2)
    }
case "call":
    exit(CallCommand.run(Array(arguments.dropFirst()), environment: environment))
case "backup":
    exit(BackupCommand.run(Array(arguments.dropFirst()), environment: environment))
case "mcp":
    // Temporary flag parsing until the command line moves to ArgumentParser.
    var socket: String?, agent: String?
    var rest = arguments.dropFirst()
    while let flag = rest.popFirst() {
        switch flag {
        case "--socket": socket = rest.popFirst()
        case "--agent": agent = rest.popFirst()
        default:
            fputs("usage: agentd mcp [--socket PATH] [--agent NAME]\n", stderr)
            exit(2)
        }
    }
    exit(MCPCommand.run(socketPath: socket, agent: agent))
default:
    fputs("agentd: unknown command \(command)\n\n\(usage)\n", stderr)
    exit(2)
}
