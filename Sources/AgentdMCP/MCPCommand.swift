import AgentdClient
import Foundation
import MCP

/// `agentd mcp [--socket PATH] [--agent NAME]`: a stdio MCP server that gives a coding agent
/// agentd's locks, leases and task graphs as tools. One process per agent session, a client of
/// the daemon's socket like any other; it never runs inside the daemon.
public enum MCPCommand {
    public static let serverName = "agentd"
    public static let serverVersion = "0.2.0"

    /// The agent's name: `--agent`, else `AGENTD_AGENT`, else `mcp-<pid>`.
    public static func agentName(_ flag: String?, environment: [String: String]) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let named = environment["AGENTD_AGENT"], !named.isEmpty { return named }
        return "mcp-\(getpid())"
    }

    /// Serves MCP on stdin/stdout until stdin closes; returns the exit status. Blocks the
    /// calling thread (the tools run on Swift's concurrency pool).
    public static func run(connect settings: ConnectSettings, agent: String?) -> Int32 {
        final class Box: @unchecked Sendable { var status: Int32 = 0 }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            box.status = await serve(connect: settings, agent: agent)
            done.signal()
        }
        done.wait()
        return box.status
    }

    public static func serve(connect settings: ConnectSettings, agent: String?) async -> Int32 {
        let environment = AgentdEnvironment.current
        let endpoint = settings.endpoint(environment)
        let name = agentName(agent, environment: environment.values)
        let session = AgentSession(agent: name, endpoint: endpoint) {
            try settings.open(environment)
        }
        let tools = AgentdTools(session: session)
        let server = Server(name: serverName, version: serverVersion, title: "agentd: locks, leases and task graphs",
                            instructions: ToolCatalog.instructions(agent: name),
                            capabilities: .init(tools: .init(listChanged: false)))
        await server.withMethodHandler(ListTools.self) { _ in .init(tools: ToolCatalog.tools) }
        await server.withMethodHandler(CallTool.self) { params in
            var arguments = JSONObject()
            for (key, value) in (params.arguments ?? [:]).sorted(by: { $0.key < $1.key }) { arguments[key] = JSONValue(value) }
            let outcome = await tools.call(params.name, arguments)
            let structured: Value? = outcome.structured.mcpValue
            return .init(content: [.text(text: outcome.text, annotations: nil, _meta: nil)],
                         structuredContent: structured, isError: outcome.isError)
        }
        fputs("agentd mcp: agent \(name), agentd at \(endpoint)\n", stderr)
        do {
            try await server.start(transport: StdioTransport()) { client, _ in
                session.clientName = client.name
            }
        } catch {
            fputs("agentd mcp: \(error)\n", stderr)
            session.close()
            return 1
        }
        // The client closing our stdin is the end of the session.
        await server.waitUntilCompleted()
        session.close()
        return 0
    }
}
