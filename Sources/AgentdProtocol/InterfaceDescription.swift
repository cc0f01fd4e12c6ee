import AgentdBase
import AgentdCore
/// DescribeInterface: the whole protocol, so that an agent with no client library can learn it.
/// Built once at start from this table; keep it true whenever a method or param changes.
package enum InterfaceDescription {
    package struct MethodDoc {
        package var method: Method
        package var result: String   // a JSON value describing the answer
    }

    package static let nodeDoc = #"{"id":"uuid","task_id":"uuid","status":"PENDING | RUNNING | COMPLETED | FAILED","dependencies":["uuid"],"payload_schema":"any","result_payload":"any: the result (COMPLETED) or error payload (FAILED), else null","acquired_at":"unix seconds or null","lease_id":"uuid or null","lease_owner":"string or null","lease_expires_at":"unix seconds or null","updated_at":"unix seconds","attempts":"integer","max_attempts":"integer or null (unlimited)","name":"string or null: the client's name for the node, unique within its task"}"#
    package static let lockDoc = #"{"resource_key":"string","lease_id":"uuid","owner":"string","provider":"string or null","task_id":"uuid or null","node_id":"uuid or null","metadata":"any","acquired_at":"unix seconds","lease_expires_at":"unix seconds","fencing_token":"integer, rising strictly across all keys and restarts","waiters":"integer: parked acquirers of the key"}"#
    package static let eventDoc = #"{"id":"uuid","task_id":"uuid","node_id":"uuid","action_type":"string (COMMIT_EVENT, COMPLETE_NODE, FAIL_NODE, LEASE_EXPIRED or the client's own)","payload":"any","timestamp":"iso8601","seq":"integer, rising by 1 per task from 1"}"#
    package static let taskStatusDoc = #"{"task":{"id":"uuid","goal":"string","context":"any","created_at":"iso8601","status":"ACTIVE | COMPLETED | FAILED | CANCELLED","blocked_nodes":"integer: PENDING nodes that can never run because a dependency FAILED"},"counts":"object: node status (PENDING, RUNNING, COMPLETED, FAILED) -> count, statuses present only, sorted; adds up to the number of nodes","nodes":["NODE"]}"#

    package static let methods: [MethodDoc] = [
        MethodDoc(method: .describeInterface,
                  result: #"{"protocol":"string","transport":"string","framing":"string","state_model":"object","resource_lock_model":"object","methods":"array of {method, aliases, params, result}"}"#),
        MethodDoc(method: .health,
                  result: #"{"status":"ok","database":"ok","running_timeout_secs":"integer","context_event_limit":"integer"}"#),
        MethodDoc(method: .metrics,
                  result: #"{"uptime_secs":"integer","running_timeout_secs":"integer","context_event_limit":"integer","runtime":{"registered_tasks":"integer","acquire_attempts":"integer","acquired_nodes":"integer","acquisition_latency_micros_total":"integer","average_acquisition_latency_micros":"integer","committed_events":"integer","heartbeats":"integer","completed_nodes":"integer","failed_nodes":"integer","timeout_rollbacks":"integer","acquired_resource_locks":"integer","released_resource_locks":"integer"},"database":{"schema_version":"integer","latest_schema_version":"integer","total_tasks":"integer","total_nodes":"integer","total_events":"integer","active_resource_locks":"integer","expired_resource_locks":"integer","running_leases":"integer","expired_running_leases":"integer","node_status_counts":"object keyed by node status"}}"#),
        MethodDoc(method: .registerTask,
                  result: #"{"task_id":"uuid"}"#),
        MethodDoc(method: .acquireNextNode,
                  result: #"{"null":"when no node is runnable (or wait_ms ran out)","otherwise":{"task_id":"uuid","node_id":"uuid","lease_id":"uuid","lease_owner":"string","lease_expires_at":"unix seconds","context":{"task":"{id, goal, context, created_at}","node":"NODE, now RUNNING","completed_dependencies":"[{node_id, result_payload}] in dependency order","event_journal_limit":"integer","event_journal":"the task's last events, oldest first: [EVENT]"}}}"#),
        MethodDoc(method: .commitEvent,
                  result: #"{"event_id":"uuid"}"#),
        MethodDoc(method: .heartbeatNode,
                  result: #"{"ok":true}"#),
        MethodDoc(method: .completeNode,
                  result: #"{"event_id":"uuid"}"#),
        MethodDoc(method: .failNode,
                  result: #"{"event_id":"uuid"}"#),
        MethodDoc(method: .taskStatus, result: taskStatusDoc),
        MethodDoc(method: .acquireResourceLock,
                  result: #""LOCK, or null while the lock is held (also for the same owner) or when wait_ms ran out""#),
        MethodDoc(method: .heartbeatResourceLock,
                  result: #"{"ok":true}"#),
        MethodDoc(method: .releaseResourceLock,
                  result: #"{"ok":true}"#),
        MethodDoc(method: .listResourceLocks,
                  result: #"{"locks":"array of LOCK plus updated_at (unix seconds), active locks only, sorted by resource_key"}"#),
        MethodDoc(method: .addNodes,
                  result: #"{"node_ids":"array of uuid, in the order given"}"#),
        MethodDoc(method: .retryNode,
                  result: #"{"ok":true}"#),
        MethodDoc(method: .cancelTask,
                  result: #"{"ok":true}"#),
        MethodDoc(method: .listTasks,
                  result: #"{"tasks":"[{id, goal, status, created_at, counts, blocked_nodes}], newest first","next_after":"uuid to pass as after for the next page, or null at the end"}"#),
        MethodDoc(method: .deleteTask,
                  result: #"{"ok":true}"#),
        MethodDoc(method: .readEvents,
                  result: #"{"events":"[EVENT] oldest first","next_seq":"the after_seq for the next call"}"#),
    ]

    /// `{"name": "type, default: summary", ...}`, written from the method's table of params.
    static func appendParams(_ params: [Param], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        for (offset, param) in params.enumerated() {
            if offset > 0 { out.append(UInt8(ascii: ",")) }
            out.appendJSONString(param.nameText)
            out.append(UInt8(ascii: ":"))
            out.appendJSONString(param.typeText + ": " + param.summary)
        }
        out.append(UInt8(ascii: "}"))
    }

    package static func json() -> [UInt8] {
        var out: [UInt8] = []
        out.appendASCII(#"{"protocol":"agentd-jsonl-v1","transport":"unix-domain-socket","framing":"one JSON-RPC style request per line; one response per line; at most 1048576 bytes a line","#)
        out.appendASCII(#""state_model":{"node_statuses":["PENDING","RUNNING","COMPLETED","FAILED"],"strict_transitions":{"AcquireNextNode":"PENDING -> RUNNING","CompleteNode":"RUNNING -> COMPLETED when lease_id matches","FailNode":"RUNNING -> FAILED when lease_id matches","timeout_rollback":"RUNNING -> PENDING when the lease expires"}},"#)
        out.appendASCII(#""resource_lock_model":{"exclusive_per":"resource_key","contended_acquire":"null","expiry":"lease_expires_at; an expired lock can be taken by anyone and its old lease is stale","lock":"#)
        out.append(contentsOf: lockDoc.utf8)
        out.appendASCII(#"},"node":"#)
        out.append(contentsOf: nodeDoc.utf8)
        out.appendASCII(#","node_definition":"#)
        appendParams(Param.nodeDefinitionFields, to: &out)
        out.appendASCII(#","event":"#)
        out.append(contentsOf: eventDoc.utf8)
        out.appendASCII(#","errors":{"codes":{"-32700":"parse error","-32601":"unknown method","-32602":"invalid params","-32000":"the state refuses the request","-32001":"line too long"},"data.reason":["PARSE_ERROR","INVALID_REQUEST","UNKNOWN_METHOD","INVALID_PARAMS","REQUEST_TOO_LARGE","TASK_NOT_FOUND","NODE_NOT_FOUND","NODE_NOT_RUNNING","LEASE_MISMATCH","LOCK_NOT_HELD","INVALID_DAG","TASK_CLOSED","UNAUTHENTICATED"]}"#)
        out.appendASCII(#","methods":["#)
        for (offset, doc) in methods.enumerated() {
            if offset > 0 { out.append(UInt8(ascii: ",")) }
            out.appendASCII(#"{"method":"#)
            out.appendJSONString(doc.method.name)
            out.appendASCII(#","aliases":["#)
            let aliases = [Method.snakeCase(doc.method.name)] + doc.method.aliases
            for (i, alias) in aliases.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out.appendJSONString(alias)
            }
            out.appendASCII(#"],"params":"#)
            appendParams(doc.method.params, to: &out)
            out.appendASCII(#","result":"#)
            out.append(contentsOf: doc.result.utf8)
            out.append(UInt8(ascii: "}"))
        }
        // Answered by the network listener itself, before a connection reaches the methods above.
        out.appendASCII(#",{"method":"Authenticate","aliases":["authenticate"],"only":"on tls:// connections, as their first request; the Unix socket does not answer it","params":"#)
        appendParams(Param.authenticationParams, to: &out)
        out.appendASCII(#","result":{"agent":"string: the name the tokens file gives the token; the default owner and lease_owner of this connection"}}"#)
        out.appendASCII("]}")
        return out
    }
}
