import AgentdBase
import AgentdCore
import AgentdStore
import AgentdProtocol
let usage = """
agentd: one durable place where AI agents coordinate (task DAGs, leases, locks, a journal).

USAGE
  agentd [serve] [--socket PATH] [--db PATH] [--node-timeout SECS]
                 [--context-event-limit N] [--sync normal|full] [--socket-mode 0600|0660]
  agentd call METHOD [PARAMS_JSON] [--socket PATH]
  agentd mcp [--socket PATH] [--agent NAME]     an MCP server on stdio for coding agents
  agentd help | --help | -h

ENVIRONMENT (flags win; the process environment wins over the env file)
  AGENTD_HOME                 default ~/.agentd (holds agent_state.db, agentd.sock, .env)
  AGENTD_DATABASE_URL         sqlite://PATH (sqlite::memory: keeps nothing on disk)
  AGENTD_SOCKET_PATH          the Unix socket
  AGENTD_SOCKET_MODE          the socket's mode: 0600 (default, owner only) or 0660 (and its group)
  AGENTD_NODE_TIMEOUT_SECS    node lease length, default 300
  AGENTD_CONTEXT_EVENT_LIMIT  journal events in an acquired node's context, default 50
  AGENTD_ENV_FILE             default $AGENTD_HOME/.env
  AGENTD_AGENT                agentd mcp's agent name (default mcp-<pid>)

EXAMPLES
  agentd call Health
  agentd call RegisterTask '{"goal":"ship","initial_nodes":[{"id":"6c1f0e38-0d5e-4a43-9d6b-0a4b3c1d2e3f"}]}'
  agentd call DescribeInterface
"""
