import AgentdBase

/// One param of a method, declared once. The request handler reads params through these
/// declarations (in debug builds it checks that each read matches the method's table), and
/// DescribeInterface and the params section of docs/PROTOCOL.md are written from them.
package struct Param {
    package enum Kind {
        case string, uuid, integer, seconds, milliseconds, pageSize, boolean, any, nodeDefinitions

        /// How DescribeInterface and the docs name the type.
        package var typeName: String {
            switch self {
            case .string: return "string"
            case .uuid: return "uuid"
            case .integer: return "integer >= 0"
            case .seconds: return "integer seconds"
            case .milliseconds: return "integer milliseconds"
            case .pageSize: return "integer 1..1000"
            case .boolean: return "boolean"
            case .any: return "any JSON"
            case .nodeDefinitions: return "array of node definitions"
            }
        }
    }

    package let name: StaticString
    package let kind: Kind
    package let required: Bool
    /// The value used when the param is absent, as people read it; nil when there is none.
    package let defaultValue: String?
    /// Other names read when `name` is absent, in order.
    package let aliases: [StaticString]
    package let summary: String

    package init(_ name: StaticString, _ kind: Kind, required: Bool = false, default defaultValue: String? = nil,
                 aliases: [StaticString] = [], _ summary: String) {
        self.name = name
        self.kind = kind
        self.required = required
        self.defaultValue = defaultValue
        self.aliases = aliases
        self.summary = summary
    }

    package var nameText: String { name.description }

    /// "uuid (required)", "string, default \"anonymous\"", with the aliases named.
    package var typeText: String {
        var text = kind.typeName
        if required { text += " (required)" } else if let defaultValue { text += ", default \(defaultValue)" } else { text += ", optional" }
        if !aliases.isEmpty { text += "; alias " + aliases.map(\.description).joined(separator: ", ") }
        return text
    }
}

// MARK: - The params

extension Param {
    static let taskId = Param("task_id", .uuid, required: true, "the task")
    static let nodeId = Param("node_id", .uuid, required: true, "the node")
    static let leaseId = Param("lease_id", .uuid, required: true, "the lease the acquire or lock grant answered")
    static let leaseTTL = Param("lease_ttl_secs", .seconds, default: "the node timeout", "how long the lease lasts without a heartbeat")
    static let waitForNode = Param("wait_ms", .milliseconds, default: "0", "with nothing runnable, park up to this long; parked acquirers are served in arrival order and answered null when the task stops being ACTIVE")
    static let waitForLock = Param("wait_ms", .milliseconds, default: "0", "while the lock is held, wait up to this long in the key's FIFO queue")
    static let waitForEvents = Param("wait_ms", .milliseconds, default: "0", "with no event after after_seq, wait up to this long for one")
    static let releaseOnDisconnect = Param("release_on_disconnect", .boolean, default: "false", "tie the lease or lock to this connection: it ends when the connection closes")
    static let resourceKey = Param("resource_key", .string, required: true, "the lock's key, e.g. file:src/lib.rs")
    static let lockTTL = Param("ttl_secs", .seconds, default: "the node timeout (at least 1)", "how long the lock lasts without a heartbeat")
    static let pageSize = Param("limit", .pageSize, default: "100", "the most items in one answer")

    static let goal = Param("goal", .string, required: true, "what the task is for")
    static let context = Param("context", .any, default: "{}", "the task's context, given to every acquirer")
    static let initialNodes = Param("initial_nodes", .nodeDefinitions, default: "[]", "the DAG: node definitions")
    static let leaseOwner = Param("lease_owner", .string, default: "\"anonymous\"", "who holds the lease")
    static let optionalLeaseId = Param("lease_id", .uuid, default: "none", "the node's lease; required while the node is RUNNING")
    static let actionType = Param("action_type", .string, default: "\"COMMIT_EVENT\"", "the event's kind")
    static let eventPayload = Param("payload", .any, required: true, aliases: ["event_payload"], "the event")
    static let resultPayload = Param("result_payload", .any, required: true, aliases: ["payload"], "the node's result")
    static let errorPayload = Param("error_payload", .any, required: true, aliases: ["payload"], "why the node failed")
    static let lockOwner = Param("owner", .string, default: "\"anonymous\"", "who holds the lock")
    static let provider = Param("provider", .string, "the holder's provider, e.g. openai")
    static let lockTaskId = Param("task_id", .uuid, "a task the lock belongs to (must exist)")
    static let lockNodeId = Param("node_id", .uuid, "a node the lock belongs to")
    static let metadata = Param("metadata", .any, default: "{}", "anything the holder wants others to see")
    static let prefix = Param("prefix", .string, default: "\"\"", "only keys that start with it")
    static let nodes = Param("nodes", .nodeDefinitions, required: true, "node definitions as in RegisterTask; dependencies may name the task's existing nodes")
    static let failedNodeId = Param("node_id", .uuid, required: true, "a FAILED node")
    static let closedTaskId = Param("task_id", .uuid, required: true, "a task that is not ACTIVE")
    static let taskStatus = Param("status", .string, "ACTIVE, COMPLETED, FAILED or CANCELLED: only tasks in it")
    static let after = Param("after", .uuid, "the last task of the previous page (next_after)")
    static let eventsNodeId = Param("node_id", .uuid, "only this node's events")
    static let afterSeq = Param("after_seq", .integer, default: "0", "only events after this seq (next_seq)")

    /// Authenticate's, answered by the network listener (never on the Unix socket).
    package static let authenticationParams: [Param] = [
        Param("token", .string, required: true, "the agent's token from the daemon's tokens file"),
    ]

    /// The fields of one node definition (RegisterTask's initial_nodes, AddNodes' nodes).
    package static let nodeDefinitionFields: [Param] = [
        Param("id", .uuid, default: "generated", "the node's id"),
        Param("name", .string, default: "null", "a name unique within the task, at most 200 bytes"),
        Param("dependencies", .any, default: "[]", "array of node ids that must be COMPLETED first"),
        Param("payload_schema", .any, default: "{}", "what the node is to do, given to its acquirer"),
        Param("max_attempts", .integer, default: "unlimited", "acquires allowed before an expiry leaves the node FAILED"),
    ]
}

extension Method {
    /// This method's params, in the order DescribeInterface and the docs list them. Empty for
    /// the methods that ignore their params.
    package var params: [Param] {
        switch self {
        case .describeInterface, .health, .metrics: return []
        case .registerTask: return [.goal, .context, .initialNodes]
        case .acquireNextNode: return [.taskId, .leaseOwner, .leaseTTL, .waitForNode, .releaseOnDisconnect]
        case .commitEvent: return [.taskId, .nodeId, .optionalLeaseId, .actionType, .eventPayload]
        case .heartbeatNode: return [.taskId, .nodeId, .leaseId, .leaseTTL]
        case .completeNode: return [.taskId, .nodeId, .leaseId, .resultPayload]
        case .failNode: return [.taskId, .nodeId, .leaseId, .errorPayload]
        case .taskStatus: return [.taskId]
        case .acquireResourceLock:
            return [.resourceKey, .lockOwner, .provider, .lockTTL, .lockTaskId, .lockNodeId, .metadata, .waitForLock,
                    .releaseOnDisconnect]
        case .heartbeatResourceLock: return [.resourceKey, .leaseId, .lockTTL]
        case .releaseResourceLock: return [.resourceKey, .leaseId]
        case .listResourceLocks: return [.prefix]
        case .addNodes: return [.taskId, .nodes]
        case .retryNode: return [.taskId, .failedNodeId]
        case .cancelTask: return [.taskId]
        case .listTasks: return [.taskStatus, .pageSize, .after]
        case .deleteTask: return [.closedTaskId]
        case .readEvents: return [.taskId, .eventsNodeId, .afterSeq, .pageSize, .waitForEvents]
        }
    }

}

/// The params section of docs/PROTOCOL.md, written from the table (a test keeps the file equal).
package enum ParamsReference {
    package static let beginMarker = "<!-- params: written from Sources/AgentdProtocol/MethodParams.swift -->"
    package static let endMarker = "<!-- end of params -->"

    package static func markdown() -> String {
        var lines = ["| method | param | type | what it is |", "| --- | --- | --- | --- |"]
        for method in Method.allCases {
            let params = method.params
            if params.isEmpty {
                lines.append("| \(method.name) | (ignored) | | |")
            }
            for param in params {
                lines.append("| \(method.name) | `\(param.nameText)` | \(param.typeText) | \(param.summary) |")
            }
        }
        for param in Param.authenticationParams {
            lines.append("| Authenticate (tls:// only) | `\(param.nameText)` | \(param.typeText) | \(param.summary) |")
        }
        lines.append("")
        lines.append("A node definition (RegisterTask's `initial_nodes`, AddNodes' `nodes`):")
        lines.append("")
        lines.append("| field | type | what it is |")
        lines.append("| --- | --- | --- |")
        for field in Param.nodeDefinitionFields {
            lines.append("| `\(field.nameText)` | \(field.typeText) | \(field.summary) |")
        }
        return lines.joined(separator: "\n")
    }
}
