import AgentdClient
import MCP

/// The tools as the client lists them: names, when to use each, input schemas, annotations.
enum ToolCatalog {
    /// The longest a blocking tool waits: agents cut tool calls after about a minute.
    static let maxWaitSeconds = 50.0
    static let defaultWorkWaitSeconds = 20.0
    static let defaultLockTTL: Int64 = 300

    static func instructions(agent: String) -> String {
        """
        agentd coordinates the agents working on this project: exclusive locks on shared \
        resources, task graphs whose nodes are handed to one agent at a time, and a journal. \
        You are agent "\(agent)". What you take is yours for as long as this session lives: the \
        server keeps it alive for you (there is no heartbeat to call) and agentd frees it the \
        moment the session ends.
        - Before editing a file or resource other agents may touch, call lock with all the keys \
        of the change at once (e.g. ["file:src/app.py", "file:tests/test_app.py"]). If it answers \
        conflicts, work on something else or call lock again with wait_s. Pass the fencing_token \
        on to anything that accepts one. Call unlock as soon as the change is written.
        - To work on a task: call work_next with its task_id in a loop. Each node comes with its \
        payload (what to do) and its dependencies' results; journal progress with work_log, then \
        finish with work_done (the result dependents will see) or work_fail. When work_next \
        answers none, its task_status says whether to call again or stop.
        - To split work among agents: task_create with named nodes and `after` lists, then share \
        the task_id. task_status, locks and events show where things stand.
        """
    }

    private static let waitSchema: JSONValue = [
        "type": "number", "minimum": 0, "maximum": 50,
        "description": "Seconds to wait for it (at most 50; 0 answers at once).",
    ]

    private static func object(_ properties: JSONObject, required: [String] = []) -> Value {
        var schema: JSONObject = JSONObject([("type", "object"), ("properties", .object(properties))])
        if !required.isEmpty { schema["required"] = .array(required.map { .string($0) }) }
        schema["additionalProperties"] = false
        return JSONValue.object(schema).mcpValue
    }

    private static let taskId: JSONValue = ["type": "string", "description": "The task's id (task_create returns it)."]
    private static let nodeId: JSONValue = ["type": "string", "description": "The node's id (work_next returns it)."]

    static let tools: [Tool] = [
        Tool(
            name: "task_create",
            description: """
            Create a task: a goal and a graph of named nodes that agents take one at a time with work_next. \
            Use it to split work among several agents (or to plan your own); `after` lists the nodes that \
            must be COMPLETED before a node can start. Returns the task_id to share and each node's id.
            """,
            inputSchema: object(JSONObject([
                ("goal", ["type": "string", "description": "What the task is for, in a sentence."]),
                ("context", ["description": "Any JSON every worker sees with each node (repository, branch, conventions)."]),
                ("nodes", [
                    "type": "array",
                    "description": "The nodes, each {name, after?, payload?, max_attempts?}; names are unique within the task.",
                    "items": [
                        "type": "object",
                        "properties": [
                            "name": ["type": "string", "maxLength": 200, "description": "Unique within the task, e.g. \"build\"."],
                            "after": ["type": "array", "items": ["type": "string"],
                                      "description": "Names of nodes that must complete first."],
                            "payload": ["description": "Any JSON: what the worker of this node should do."],
                            "max_attempts": ["type": "integer", "minimum": 1,
                                             "description": "Attempts before the node FAILS for good (default: unlimited)."],
                        ],
                        "required": ["name"],
                        "additionalProperties": false,
                    ],
                ]),
            ]), required: ["goal", "nodes"]),
            annotations: .init(title: "Create a task graph", readOnlyHint: false, destructiveHint: false,
                               idempotentHint: false, openWorldHint: false)
        ),
        Tool(
            name: "task_status",
            description: """
            Where a task stands: its status (ACTIVE, COMPLETED, FAILED, CANCELLED), counts by node status, \
            and its nodes with who holds the running ones and for how long. Use it to decide whether to keep \
            calling work_next, or to report progress.
            """,
            inputSchema: object(JSONObject([
                ("task_id", taskId),
                ("status", ["type": "string", "enum": ["PENDING", "RUNNING", "COMPLETED", "FAILED"],
                            "description": "Only the nodes in this status."]),
                ("limit", ["type": "integer", "minimum": 1, "maximum": 1000,
                           "description": "At most this many nodes in the list (default 100)."]),
            ]), required: ["task_id"]),
            annotations: .init(title: "Task status", readOnlyHint: true, idempotentHint: true, openWorldHint: false)
        ),
        Tool(
            name: "work_next",
            description: """
            Take the next runnable node of a task (waiting up to wait_s, default 20, for one to become runnable). \
            The node is yours until you call work_done or work_fail, for as long as this session lives. \
            You get its payload (what to do), the results of the nodes it comes after, and recent journal events. \
            When nothing is runnable it answers {none: true, task_status}: call again while the task is ACTIVE, \
            stop when it is COMPLETED, FAILED or CANCELLED.
            """,
            inputSchema: object(JSONObject([
                ("task_id", taskId),
                ("wait_s", waitSchema),
                ("lease_ttl_s", ["type": "integer", "minimum": 1, "maximum": 86400,
                                 "description": "Lease length in seconds (default: the daemon's node timeout). The server renews it every third of this while the session lives."]),
            ]), required: ["task_id"]),
            annotations: .init(title: "Take the next node", readOnlyHint: false, destructiveHint: false,
                               idempotentHint: false, openWorldHint: false)
        ),
        Tool(
            name: "work_log",
            description: """
            Journal progress on a node you hold (a decision, a finding, a file written) so other agents and \
            people can follow; they read it with events. Give `message` (text) or `payload` (any JSON).
            """,
            inputSchema: object(JSONObject([
                ("task_id", taskId), ("node_id", nodeId),
                ("message", ["type": "string", "description": "What happened, in a sentence."]),
                ("payload", ["description": "Any JSON instead of (or beside) message."]),
                ("action_type", ["type": "string", "description": "The event's type (default COMMIT_EVENT)."]),
            ]), required: ["task_id", "node_id"]),
            annotations: .init(title: "Journal progress", readOnlyHint: false, destructiveHint: false,
                               idempotentHint: false, openWorldHint: false)
        ),
        Tool(
            name: "work_done",
            description: """
            Finish a node you hold as COMPLETED, with its result (the nodes after it receive it). \
            Then call work_next for the next one.
            """,
            inputSchema: object(JSONObject([
                ("task_id", taskId), ("node_id", nodeId),
                ("result", ["description": "Any JSON: what the node produced (a summary, paths, a commit)."]),
            ]), required: ["task_id", "node_id"]),
            annotations: .init(title: "Complete a node", readOnlyHint: false, destructiveHint: false,
                               idempotentHint: false, openWorldHint: false)
        ),
        Tool(
            name: "work_fail",
            description: """
            Finish a node you hold as FAILED, with the error (why, and what would unblock it). \
            Nodes after it cannot run until someone retries it.
            """,
            inputSchema: object(JSONObject([
                ("task_id", taskId), ("node_id", nodeId),
                ("error", ["description": "Any JSON: what went wrong."]),
            ]), required: ["task_id", "node_id", "error"]),
            annotations: .init(title: "Fail a node", readOnlyHint: false, destructiveHint: true,
                               idempotentHint: false, openWorldHint: false)
        ),
        Tool(
            name: "lock",
            description: """
            Take exclusive locks before changing a shared resource, e.g. ["file:src/app.py"]: all the keys or \
            none (taken in sorted order, so agents asking for overlapping sets never deadlock). Held for as \
            long as this session lives (renewed for you) or until unlock. A key another agent holds is not an \
            error: the answer lists it under conflicts with its owner and expiry; call again with wait_s to \
            wait for it. Keys you already hold count as granted.
            """,
            inputSchema: object(JSONObject([
                ("keys", ["type": "array", "items": ["type": "string"], "minItems": 1,
                          "description": "Resource keys, e.g. \"file:src/app.py\", \"db:migrations\"."]),
                ("ttl_s", ["type": "integer", "minimum": 1, "maximum": 86400,
                           "description": "How long a lock outlives a session that stops renewing it (default 300); the server renews it every third of this."]),
                ("wait_s", waitSchema),
                ("reason", ["type": "string", "description": "Why you need it, shown to agents that find it held."]),
            ]), required: ["keys"]),
            annotations: .init(title: "Lock resources", readOnlyHint: false, destructiveHint: false,
                               idempotentHint: true, openWorldHint: false)
        ),
        Tool(
            name: "unlock",
            description: """
            Release locks this session holds, as soon as the change they guard is written. \
            Without keys, releases every lock this session holds.
            """,
            inputSchema: object(JSONObject([
                ("keys", ["type": "array", "items": ["type": "string"],
                          "description": "The keys to release (default: all this session holds)."]),
            ])),
            annotations: .init(title: "Unlock resources", readOnlyHint: false, destructiveHint: false,
                               idempotentHint: true, openWorldHint: false)
        ),
        Tool(
            name: "locks",
            description: """
            List the locks held now (by every agent): key, owner, expiry, fencing token, waiters, and whether \
            it is yours. Use it to see who is working on what before planning a change.
            """,
            inputSchema: object(JSONObject([
                ("prefix", ["type": "string", "description": "Only keys that start with this, e.g. \"file:src/\"."]),
            ])),
            annotations: .init(title: "List locks", readOnlyHint: true, idempotentHint: true, openWorldHint: false)
        ),
        Tool(
            name: "events",
            description: """
            Read a task's journal in order (what agents did: logs, completions, failures, expired leases). \
            Pass the answer's next_seq as after_seq to read on; with wait_s, waits for new events.
            """,
            inputSchema: object(JSONObject([
                ("task_id", taskId),
                ("after_seq", ["type": "integer", "minimum": 0, "description": "Only events after this seq (default 0)."]),
                ("wait_s", waitSchema),
                ("node_id", ["type": "string", "description": "Only the events of this node."]),
                ("limit", ["type": "integer", "minimum": 1, "maximum": 1000, "description": "At most this many (default 100)."]),
            ]), required: ["task_id"]),
            annotations: .init(title: "Read the journal", readOnlyHint: true, idempotentHint: true, openWorldHint: false)
        ),
    ]
}
