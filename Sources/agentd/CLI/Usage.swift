let usage = """
agentd: one durable place where AI agents coordinate (task DAGs, leases, locks, a journal).

USAGE
  agentd [serve] [--socket PATH] [--db PATH] [--node-timeout SECS]
                 [--context-event-limit N] [--sync normal|full] [--sync-interval MS]
  agentd call METHOD [PARAMS_JSON] [--socket PATH]
  agentd help

ENVIRONMENT (flags win; the process environment wins over the env file)
  AGENTD_HOME                 default ~/.agentd (holds agent_state.db, agentd.sock, .env)
  AGENTD_DATABASE_URL         sqlite://PATH
  AGENTD_SOCKET_PATH          the Unix socket
  AGENTD_NODE_TIMEOUT_SECS    node lease length, default 300
  AGENTD_CONTEXT_EVENT_LIMIT  journal events in an acquired node's context, default 50
  AGENTD_SYNC_INTERVAL_MS     --sync-interval: 1 to 60000, default 50
  AGENTD_ENV_FILE             default $AGENTD_HOME/.env

DURABILITY (every answer is sent after its change is committed)
  --sync normal   the default. A crash of the daemon loses nothing acknowledged. A power cut
                  loses at most what was acknowledged in the last --sync-interval ms (plus the
                  time of a WAL sync or two): the WAL is synced off the loop thread at most that
                  long after each commit.
  --sync full     nothing acknowledged is lost, even to a power cut: the WAL is synced before
                  each answer. --sync-interval is not used.
  Fencing tokens never repeat in either mode: a block of them is synced before the first is
  handed out.

EXAMPLES
  agentd call Health
  agentd call RegisterTask '{"goal":"ship","initial_nodes":[{"id":"6c1f0e38-0d5e-4a43-9d6b-0a4b3c1d2e3f"}]}'
  agentd call DescribeInterface
"""
