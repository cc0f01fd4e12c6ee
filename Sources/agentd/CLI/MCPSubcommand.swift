import AgentdClient
import AgentdMCP
import ArgumentParser
import Glibc

/// `agentd mcp`: the AgentdMCP target's stdio MCP server, for coding agents.
struct MCPSubcommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Serve MCP on stdin/stdout: agentd's locks, leases and task graphs as tools for a coding agent.",
        discussion: """
        One process per agent session, started by the agent (Claude Code, Codex CLI, Cursor, \
        Gemini CLI: see docs/AGENTS.md). It is a client of the daemon like any other: what it \
        holds is freed when it ends.
        """
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: ArgumentHelp("The agent's name on its leases and locks (default: $AGENTD_AGENT, else mcp-<pid>).",
                               valueName: "name"))
    var agent: String?

    func run() throws {
        let status = MCPCommand.run(connect: connection.settings, agent: agent)
        if status != 0 { throw ExitCode(status) }
    }
}
