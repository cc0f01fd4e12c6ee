import AgentdBase
import AgentdCore
/// DescribeInterface: the whole protocol, so that an agent with no client library can learn it.
/// Built once at start from this table; keep it true whenever a method or param changes.
package enum InterfaceDescription {
    package struct MethodDoc {
        package var method: Method
        package var params: String   // a JSON object: field -> type and default
        package var result: String   // a JSON value describing the answer
    }

    package static let nodeDoc = #"{"id":"uuid","task_id":"uuid","status":"PENDING | RUNNING | COMPLETED | FAILED","dependencies":["uuid"],"payload_schema":"any","result_payload":"any: the result (COMPLETED) or error payload (FAILED), else null","acquired_at":"unix seconds or null","lease_id":"uuid or null","lease_owner":"string or null","lease_expires_at":"unix seconds or null","updated_at":"unix seconds","attempts":"integer","max_attempts":"integer or null (unlimited)","name":"string or null: the client's name for the node, unique within its task"}"#
    package static let lockDoc = #"{"resource_key":"string","lease_id":"uuid","owner":"string","provider":"string or null","task_id":"uuid or null","node_id":"uuid or null","metadata":"any","acquired_at":"unix seconds","lease_expires_at":"unix seconds","fencing_token":"integer, rising strictly across all keys and restarts","waiters":"integer: parked acquirers of the key"}"#
    package static let eventDoc = #"{"id":"uuid","task_id":"uuid","node_id":"uuid","action_type":"string (COMMIT_EVENT, COMPLETE_NODE, FAIL_NODE, LEASE_EXPIRED or the client's own)","payload":"any","timestamp":"iso8601","seq":"integer, rising by 1 per task from 1"}"#
    package static let taskStatusDoc = #"{"task":{"id":"uuid","goal":"string","context":"any","created_at":"iso8601","status":"ACTIVE | COMPLETED | FAILED | CANCELLED","blocked_nodes":"integer: PENDING nodes that can never run because a dependency FAILED"},"counts":"object: node status (PENDING, RUNNING, COMPLETED, FAILED) -> count, statuses present only, sorted; adds up to the number of nodes","nodes":["NODE"]}"#

    package static let methods: [MethodDoc] = [
        MethodDoc(method: .describeInterface, params: "{}",
                  result: #"{"protocol":"string","transport":"string","framing":"string","state_model":"object","resource_lock_model":"object","methods":"array of {method, aliases, params, result}"}"#),
        MethodDoc(method: .health, params: "{}",
                  result: #"{"status":"ok","database":"ok","running_timeout_secs":"integer","context_event_limit":"integer"}"#),
        MethodDoc(method: .metrics, params: "{}",
                  result: #"{"uptime_secs":"integer","running_timeout_secs":"integer","context_event_limit":"integer","runtime":{"registered_tasks":"integer","acquire_attempts":"integer","acquired_nodes":"integer","acquisition_latency_micros_total":"integer","average_acquisition_latency_micros":"integer","committed_events":"integer","heartbeats":"integer","completed_nodes":"integer","failed_nodes":"integer","timeout_rollbacks":"integer","acquired_resource_locks":"integer","released_resource_locks":"integer"},"database":{"schema_version":"integer","latest_schema_version":"integer","total_tasks":"integer","total_nodes":"integer","total_events":"integer","active_resource_locks":"integer","expired_resource_locks":"integer","running_leases":"integer","expired_running_leases":"integer","node_status_counts":"object keyed by node status"}}"#),
        MethodDoc(method: .registerTask,
                  params: #"{"goal":"string (required)","context":"any, default {}","initial_nodes":[{"id":"uuid, generated if absent","dependencies":"array of node ids, default []","payload_schema":"any, default {}","max_attempts":"positive integer, default unlimited","name":"string of at most 200 bytes, unique within the task, optional"}]}"#,
                  result: #"{"task_id":"uuid"}"#),
        MethodDoc(method: .acquireNextNode,
                  params: #"{"task_id":"uuid (required)","lease_owner":"string, default \"anonymous\"","lease_ttl_secs":"integer, default the node timeout","wait_ms":"integer: with nothing runnable, park up to this long (served in arrival order; null at once when the task stops being ACTIVE), default 0","release_on_disconnect":"boolean: the lease expires when this connection closes, default false"}"#,
                  result: #"{"null":"when no node is runnable (or wait_ms ran out)","otherwise":{"task_id":"uuid","node_id":"uuid","lease_id":"uuid","lease_owner":"string","lease_expires_at":"unix seconds","context":{"task":"{id, goal, context, created_at}","node":"NODE, now RUNNING","completed_dependencies":"[{node_id, result_payload}] in dependency order","event_journal_limit":"integer","event_journal":"the task's last events, oldest first: [EVENT]"}}}"#),
        MethodDoc(method: .commitEvent,
                  params: #"{"task_id":"uuid (required)","node_id":"uuid (required)","lease_id":"uuid, required while the node is RUNNING","action_type":"string, default \"COMMIT_EVENT\"","payload":"any (required; alias event_payload)"}"#,
                  result: #"{"event_id":"uuid"}"#),
        MethodDoc(method: .heartbeatNode,
                  params: #"{"task_id":"uuid (required)","node_id":"uuid (required)","lease_id":"uuid (required)","lease_ttl_secs":"integer, default the node timeout"}"#,
                  result: #"{"ok":true}"#),
        MethodDoc(method: .completeNode,
                  params: #"{"task_id":"uuid (required)","node_id":"uuid (required)","lease_id":"uuid (required)","result_payload":"any (required; alias payload)"}"#,
                  result: #"{"event_id":"uuid"}"#),
        MethodDoc(method: .failNode,
                  params: #"{"task_id":"uuid (required)","node_id":"uuid (required)","lease_id":"uuid (required)","error_payload":"any (required; alias payload)"}"#,
                  result: #"{"event_id":"uuid"}"#),
        MethodDoc(method: .taskStatus, params: #"{"task_id":"uuid (required)"}"#, result: taskStatusDoc),
        MethodDoc(method: .acquireResourceLock,
                  params: #"{"resource_key":"string (required)","owner":"string, default \"anonymous\"","provider":"string, optional","ttl_secs":"integer, default the node timeout (at least 1)","task_id":"uuid of an existing task, optional","node_id":"uuid, optional","metadata":"any, default {}","wait_ms":"integer: while held, wait up to this long in the key's FIFO queue, default 0","release_on_disconnect":"boolean: released when this connection closes, default false"}"#,
                  result: #""LOCK, or null while the lock is held (also for the same owner) or when wait_ms ran out""#),
        MethodDoc(method: .heartbeatResourceLock,
                  params: #"{"resource_key":"string (required)","lease_id":"uuid (required)","ttl_secs":"integer, default the node timeout (at least 1)"}"#,
                  result: #"{"ok":true}"#),
        MethodDoc(method: .releaseResourceLock,
                  params: #"{"resource_key":"string (required)","lease_id":"uuid (required)"}"#,
                  result: #"{"ok":true}"#),
        MethodDoc(method: .listResourceLocks, params: #"{"prefix":"string: only keys that start with it, optional"}"#,
                  result: #"{"locks":"array of LOCK plus updated_at (unix seconds), active locks only, sorted by resource_key"}"#),
        MethodDoc(method: .addNodes,
                  params: #"{"task_id":"uuid (required)","nodes":"array of node definitions as in RegisterTask's initial_nodes; dependencies may name existing nodes of the task (required)"}"#,
                  result: #"{"node_ids":"array of uuid, in the order given"}"#),
        MethodDoc(method: .retryNode, params: #"{"task_id":"uuid (required)","node_id":"uuid of a FAILED node (required)"}"#,
                  result: #"{"ok":true}"#),
        MethodDoc(method: .cancelTask, params: #"{"task_id":"uuid (required)"}"#,
                  result: #"{"ok":true}"#),
        MethodDoc(method: .listTasks,
                  params: #"{"status":"ACTIVE | COMPLETED | FAILED | CANCELLED, optional","limit":"1..1000, default 100","after":"uuid of the last task of the previous page, optional"}"#,
                  result: #"{"tasks":"[{id, goal, status, created_at, counts, blocked_nodes}], newest first","next_after":"uuid to pass as after for the next page, or null at the end"}"#),
        MethodDoc(method: .deleteTask, params: #"{"task_id":"uuid of a task that is not ACTIVE (required)"}"#,
                  result: #"{"ok":true}"#),
        MethodDoc(method: .readEvents,
                  params: #"{"task_id":"uuid (required)","node_id":"uuid, optional","after_seq":"integer, default 0","limit":"1..1000, default 100","wait_ms":"integer: with nothing after after_seq, park up to this long, default 0"}"#,
                  result: #"{"events":"[EVENT] oldest first","next_seq":"the after_seq for the next call"}"#),
    ]

    package static func json() -> [UInt8] {
        var out: [UInt8] = []
        out.appendASCII(#"{"protocol":"agentd-jsonl-v1","transport":"unix-domain-socket","framing":"one JSON-RPC style request per line; one response per line; at most 1048576 bytes a line","#)
        out.appendASCII(#""state_model":{"node_statuses":["PENDING","RUNNING","COMPLETED","FAILED"],"strict_transitions":{"AcquireNextNode":"PENDING -> RUNNING","CompleteNode":"RUNNING -> COMPLETED when lease_id matches","FailNode":"RUNNING -> FAILED when lease_id matches","timeout_rollback":"RUNNING -> PENDING when the lease expires"}},"#)
        out.appendASCII(#""resource_lock_model":{"exclusive_per":"resource_key","contended_acquire":"null","expiry":"lease_expires_at; an expired lock can be taken by anyone and its old lease is stale","lock":"#)
        out.append(contentsOf: lockDoc.utf8)
        out.appendASCII(#"},"node":"#)
        out.append(contentsOf: nodeDoc.utf8)
        out.appendASCII(#","event":"#)
        out.append(contentsOf: eventDoc.utf8)
        out.appendASCII(#","errors":{"codes":{"-32700":"parse error","-32601":"unknown method","-32602":"invalid params","-32000":"the state refuses the request","-32001":"line too long"},"data.reason":["PARSE_ERROR","INVALID_REQUEST","UNKNOWN_METHOD","INVALID_PARAMS","REQUEST_TOO_LARGE","TASK_NOT_FOUND","NODE_NOT_FOUND","NODE_NOT_RUNNING","LEASE_MISMATCH","LOCK_NOT_HELD","INVALID_DAG","TASK_CLOSED"]}"#)
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
            out.append(contentsOf: doc.params.utf8)
            out.appendASCII(#","result":"#)
            out.append(contentsOf: doc.result.utf8)
            out.append(UInt8(ascii: "}"))
        }
        out.appendASCII("]}")
        return out
    }
}
