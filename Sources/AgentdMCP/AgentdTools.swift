import AgentdClient
import Glibc

/// The tools: each turns its arguments into requests on the session's connection and the
/// answers into a small result. Failures come back as results with `isError`, never thrown.
final class AgentdTools: Sendable {
    let session: AgentSession
    /// Wall-clock Unix seconds (a parameter so the tests can fix it).
    let now: @Sendable () -> Int64

    init(session: AgentSession, now: @escaping @Sendable () -> Int64 = { Int64(time(nil)) }) {
        self.session = session
        self.now = now
    }

    func call(_ name: String, _ arguments: JSONObject) async -> ToolOutcome {
        let args = Arguments(tool: name, arguments)
        let outcome: ToolOutcome
        do {
            switch name {
            case "task_create": outcome = try await taskCreate(args)
            case "task_status": outcome = try await taskStatus(args)
            case "work_next": outcome = try await workNext(args)
            case "work_log": outcome = try await workLog(args)
            case "work_done": outcome = try await finish(args, complete: true)
            case "work_fail": outcome = try await finish(args, complete: false)
            case "lock": outcome = try await lock(args)
            case "unlock": outcome = try await unlock(args)
            case "locks": outcome = try await locks(args)
            case "events": outcome = try await events(args)
            default:
                outcome = ToolFailure(message: "no tool named \(name)", reason: "UNKNOWN_TOOL",
                                      next: "call one of: " + ToolCatalog.tools.map(\.name).joined(separator: ", ")).outcome
            }
        } catch {
            outcome = ToolFailure.from(error, endpoint: session.endpoint).outcome
        }
        return outcome.with(notices: session.takeNotices())
    }

    static func waitMilliseconds(_ seconds: Double) -> Int64 {
        Int64((min(max(seconds, 0), ToolCatalog.maxWaitSeconds) * 1000).rounded())
    }

    // MARK: - Tasks

    func taskCreate(_ args: Arguments) async throws -> ToolOutcome {
        let goal = try args.string("goal")
        let plan: TaskGraph
        do {
            plan = try TaskGraph(nodes: args.present("nodes"), names: .required)
        } catch let invalid as TaskGraph.Invalid {
            throw ToolFailure(message: invalid.description, reason: "INVALID_DAG",
                              next: "fix the nodes and call task_create again")
        }
        let params = plan.registerParams(goal: goal, context: args.present("context") ?? [:])
        let answer = try await session.request("RegisterTask", params)
        guard let taskId = answer["task_id"]?.stringValue else { throw malformed("RegisterTask") }
        // Names are required here: every node has one.
        session.rememberNames(task: taskId, Dictionary(uniqueKeysWithValues: plan.nodes.compactMap { node in
            node.name.map { (node.id, $0) }
        }))
        let ready = plan.nodes.filter { $0.after.isEmpty }.compactMap(\.name)
        var summary = "Created task \(taskId) with \(plan.nodes.count) node\(plan.nodes.count == 1 ? "" : "s")"
        if !ready.isEmpty { summary += " (runnable now: \(list(ready)))" }
        summary += ". Agents take its nodes with work_next {task_id: \"\(taskId)\"}."
        return ToolOutcome(structured: ["task_id": .string(taskId), "nodes": plan.idsByName], summary: summary)
    }

    func taskStatus(_ args: Arguments) async throws -> ToolOutcome {
        let taskId = try args.string("task_id")
        let only = try args.optionalString("status")
        let limit = Int(try args.integer("limit", in: 1...1000) ?? 100)
        let status = try await session.request("TaskStatus", ["task_id": .string(taskId)])
        let summary = TaskSummary(status, now: now())
        session.rememberNames(task: taskId, summary.names)
        var nodes = summary.nodes
        if let only { nodes = nodes.filter { $0["status"]?.stringValue == only } }
        var result = summary.header
        result["nodes"] = .array(Array(nodes.prefix(limit)))
        if nodes.count > limit { result["nodes_omitted"] = .int(Int64(nodes.count - limit)) }
        return ToolOutcome(structured: .object(result), summary: summary.sentence)
    }

    func workNext(_ args: Arguments) async throws -> ToolOutcome {
        let taskId = try args.string("task_id")
        let waitSeconds = try args.number("wait_s", in: 0...Double(Int32.max)) ?? ToolCatalog.defaultWorkWaitSeconds
        let requestedTTL = try args.integer("lease_ttl_s", in: 1...86_400)
        let ttl = try await requestedTTLOrDefault(requestedTTL)
        var params = JSONObject([("task_id", .string(taskId)), ("lease_owner", .string(session.agent))])
        params["lease_ttl_secs"] = .int(ttl)
        params["release_on_disconnect"] = true
        let waitMs = AgentdTools.waitMilliseconds(waitSeconds)
        if waitMs > 0 { params["wait_ms"] = .int(waitMs) }
        let answer = try await session.request("AcquireNextNode", .object(params))

        guard !answer.isNull else {
            let status = try await session.request("TaskStatus", ["task_id": .string(taskId)])
            let summary = TaskSummary(status, now: now())
            session.rememberNames(task: taskId, summary.names)
            var taskStatus = summary.header
            taskStatus["nodes"] = nil
            let hint = summary.hintWhenNothingRunnable
            return ToolOutcome(structured: ["none": true, "task_status": .object(taskStatus), "hint": .string(hint)],
                               summary: "No node to take now. " + hint)
        }

        guard let nodeId = answer["node_id"]?.stringValue, let leaseId = answer["lease_id"]?.stringValue else {
            throw malformed("AcquireNextNode")
        }
        if Task.isCancelled {
            // The client gave up on this call and will never learn of the node: hand it back
            // now (a lease of zero seconds expires at once) instead of holding it unseen.
            _ = try? await session.request("HeartbeatNode", ["task_id": .string(taskId), "node_id": .string(nodeId),
                                                             "lease_id": .string(leaseId), "lease_ttl_secs": 0])
            throw CancellationError()
        }
        let context = answer["context"] ?? [:]
        let node = context["node"] ?? [:]
        let name = node["name"]?.stringValue ?? session.name(task: taskId, node: nodeId)
        let ref = AgentSession.NodeRef(taskId: taskId, nodeId: nodeId)
        session.holdLease(ref, leaseId: leaseId, name: name, ttl: ttl)
        if let name { session.rememberNames(task: taskId, [nodeId: name]) }

        let completed = context["completed_dependencies"]?.arrayValue ?? []
        let dependencyIds = completed.compactMap { $0["node_id"]?.stringValue }
        if dependencyIds.contains(where: { session.name(task: taskId, node: $0) == nil }) {
            // Only node objects carry names: learn the task's once.
            if let status = try? await session.request("TaskStatus", ["task_id": .string(taskId)]) {
                session.rememberNames(task: taskId, TaskSummary(status, now: now()).names)
            }
        }
        let dependencies: [JSONValue] = completed.map { dependency in
            let id = dependency["node_id"]?.stringValue ?? ""
            return .object(JSONObject([("name", session.name(task: taskId, node: id).map { .string($0) } ?? .null),
                                       ("node_id", .string(id)),
                                       ("result", dependency["result_payload"] ?? .null)]))
        }
        let journal = context["event_journal"]?.arrayValue ?? []
        let recent: [JSONValue] = journal.suffix(10).map { event in
            let eventNode = event["node_id"]?.stringValue ?? ""
            return .object(JSONObject([
                ("node", session.name(task: taskId, node: eventNode).map { .string($0) } ?? .string(eventNode)),
                ("action_type", event["action_type"] ?? .null),
                ("payload", event["payload"] ?? .null),
                ("timestamp", event["timestamp"] ?? .null),
            ]))
        }
        var result = JSONObject([("task_id", .string(taskId)), ("node_id", .string(nodeId))])
        result["name"] = name.map { .string($0) } ?? .null
        result["lease_id"] = .string(leaseId)
        result["expires_at"] = answer["lease_expires_at"] ?? .null
        result["attempt"] = node["attempts"] ?? .null
        result["payload"] = node["payload_schema"] ?? .null
        result["goal"] = context["task"]?["goal"] ?? .null
        result["task_context"] = context["task"]?["context"] ?? .null
        result["dependencies"] = .array(dependencies)
        result["recent_events"] = .array(recent)
        let label = name.map { "\"\($0)\" (\(nodeId))" } ?? nodeId
        return ToolOutcome(structured: .object(result),
                           summary: "You hold node \(label) of task \(taskId); this session keeps its lease alive. Do what its payload says, then call work_done (or work_fail) with this task_id and node_id.")
    }

    func workLog(_ args: Arguments) async throws -> ToolOutcome {
        let taskId = try args.string("task_id")
        let nodeId = try args.string("node_id")
        let message = try args.optionalString("message")
        var payload = args.present("payload")
        if let message {
            if case .object(var object)? = payload {
                object["message"] = .string(message)
                payload = .object(object)
            } else if let other = payload {
                payload = ["message": .string(message), "data": other]
            } else {
                payload = ["message": .string(message)]
            }
        }
        guard let payload else { throw ToolFailure.arguments("give `message` (text) or `payload` (any JSON)", tool: "work_log") }
        var params = JSONObject([("task_id", .string(taskId)), ("node_id", .string(nodeId))])
        let ref = AgentSession.NodeRef(taskId: taskId, nodeId: nodeId)
        let held = session.heldLease(ref)
        if let held { params["lease_id"] = .string(held.leaseId) }
        if let type = try args.optionalString("action_type") { params["action_type"] = .string(type) }
        params["payload"] = payload
        do {
            let answer = try await session.request("CommitEvent", .object(params))
            return ToolOutcome(structured: ["event_id": answer["event_id"] ?? .null], summary: "Journaled.")
        } catch let refused as AgentdError where ["LEASE_MISMATCH", "NODE_NOT_RUNNING"].contains(refused.reason ?? "") {
            throw await leaseFailure(ref, held: held, refused)
        }
    }

    /// work_done and work_fail: the lease is the one this session holds for the node.
    func finish(_ args: Arguments, complete: Bool) async throws -> ToolOutcome {
        let tool = complete ? "work_done" : "work_fail"
        let taskId = try args.string("task_id")
        let nodeId = try args.string("node_id")
        let payload: JSONValue
        if complete {
            payload = args.present("result") ?? [:]
        } else {
            guard let error = args.present("error") else { throw ToolFailure.arguments("missing argument `error` (any JSON: what went wrong)", tool: tool) }
            payload = error
        }
        let ref = AgentSession.NodeRef(taskId: taskId, nodeId: nodeId)
        guard let held = session.heldLease(ref) else {
            throw await leaseFailure(ref, held: nil, nil)
        }
        let params: JSONValue = .object(JSONObject([
            ("task_id", .string(taskId)), ("node_id", .string(nodeId)), ("lease_id", .string(held.leaseId)),
            (complete ? "result_payload" : "error_payload", payload),
        ]))
        do {
            let answer = try await session.request(complete ? "CompleteNode" : "FailNode", params)
            session.dropLease(ref, leaseId: held.leaseId)
            let label = held.name.map { "\"\($0)\"" } ?? nodeId
            return ToolOutcome(structured: ["event_id": answer["event_id"] ?? .null],
                               summary: complete ? "Node \(label) is COMPLETED. Call work_next for the next one."
                                                 : "Node \(label) is FAILED. Call work_next for other work.")
        } catch let refused as AgentdError where ["LEASE_MISMATCH", "NODE_NOT_RUNNING"].contains(refused.reason ?? "") {
            session.dropLease(ref, leaseId: held.leaseId)
            throw await leaseFailure(ref, held: held, refused)
        }
    }

    /// Explains a node this session cannot write to, from where the node stands now.
    private func leaseFailure(_ ref: AgentSession.NodeRef, held: AgentSession.HeldLease?, _ refused: AgentdError?) async -> ToolFailure {
        let label = held?.name.map { "\"\($0)\"" } ?? session.name(task: ref.taskId, node: ref.nodeId).map { "\"\($0)\"" } ?? ref.nodeId
        var state = ""
        if let status = try? await session.request("TaskStatus", ["task_id": .string(ref.taskId)]),
           let node = status["nodes"]?.arrayValue?.first(where: { $0["id"]?.stringValue == ref.nodeId }) {
            switch node["status"]?.stringValue {
            case "RUNNING"?: state = "another agent (\(node["lease_owner"]?.stringValue ?? "unknown")) holds it now"
            case "PENDING"?: state = "it is PENDING again, waiting for an agent"
            case let other?: state = "it is \(other) already"
            default: break
            }
        }
        let what = held == nil ? "this session holds no lease on node \(label)" : "your lease on node \(label) expired or was taken back"
        var message = what + (state.isEmpty ? "" : "; " + state)
        if let refused { message += " (agentd: \(refused.message))" }
        return ToolFailure(message: message, reason: refused?.reason ?? "NO_LEASE",
                           next: held == nil ? "call work_next to take a node; only the session that took a node can finish it"
                                             : "drop this node's work and call work_next")
    }

    private func requestedTTLOrDefault(_ requested: Int64?) async throws -> Int64 {
        if let requested { return requested }
        return try await session.leaseTTL()
    }

    // MARK: - Locks

    func lock(_ args: Arguments) async throws -> ToolOutcome {
        guard let requested = try args.strings("keys"), !requested.isEmpty else {
            throw ToolFailure.arguments("missing argument `keys` (an array of resource keys)", tool: "lock")
        }
        let keys = LockPlan.order(requested)
        let ttl = try args.integer("ttl_s", in: 1...86_400) ?? ToolCatalog.defaultLockTTL
        let waitMs = AgentdTools.waitMilliseconds(try args.number("wait_s", in: 0...Double(Int32.max)) ?? 0)
        let reason = try args.optionalString("reason")
        let deadline = Monotonic.now() + Double(waitMs) / 1000

        var granted: [(key: String, token: Int64?, expiresAt: Int64?, already: Bool)] = []
        var taken: [(key: String, leaseId: String)] = []
        var conflictAt: String?
        for key in keys {
            if let held = session.heldLock(key) {
                granted.append((key, held.fencingToken, held.expiresAt, true))
                continue
            }
            var params = JSONObject([("resource_key", .string(key)), ("owner", .string(session.agent))])
            if let provider = session.clientName { params["provider"] = .string(provider) }
            params["ttl_secs"] = .int(ttl)
            params["metadata"] = reason.map { ["reason": .string($0)] } ?? [:]
            params["release_on_disconnect"] = true
            let left = Int64(((deadline - Monotonic.now()) * 1000).rounded())
            if waitMs > 0, left > 0 { params["wait_ms"] = .int(left) }
            let answer: JSONValue
            do {
                answer = try await session.request("AcquireResourceLock", .object(params))
            } catch {
                await release(taken)
                throw error
            }
            guard let leaseId = answer["lease_id"]?.stringValue else {
                conflictAt = key
                break
            }
            let token = answer["fencing_token"]?.intValue
            let expiresAt = answer["lease_expires_at"]?.intValue
            session.holdLock(key: key, leaseId: leaseId, fencingToken: token, ttl: ttl, expiresAt: expiresAt)
            taken.append((key, leaseId))
            granted.append((key, token, expiresAt, false))
        }

        if Task.isCancelled {
            // Nobody will read this answer: keep nothing the caller does not know it holds.
            await release(taken)
            throw CancellationError()
        }
        guard let conflictAt else {
            let structured: JSONValue = [
                "granted": .array(granted.map { grant in
                    var object = JSONObject([("key", .string(grant.key)), ("fencing_token", grant.token.map { .int($0) } ?? .null),
                                             ("expires_at", grant.expiresAt.map { .int($0) } ?? .null)])
                    if grant.already { object["already_held"] = true }
                    return .object(object)
                }),
                "conflicts": [],
            ]
            let tokens = granted.map { "\($0.key) (fencing token \($0.token.map(String.init) ?? "?"))" }
            return ToolOutcome(structured: structured,
                               summary: "Locked \(list(tokens)). This session keeps \(granted.count == 1 ? "it" : "them") until unlock or until it ends; call unlock as soon as the change is written.")
        }

        // All or nothing: give back what this call took.
        await release(taken)
        let wanted = Set(keys)
        let listed = (try? await session.request("ListResourceLocks", [:]))?["locks"]?.arrayValue ?? []
        var conflicts: [JSONValue] = listed.compactMap { lock in
            guard let key = lock["resource_key"]?.stringValue, wanted.contains(key),
                  session.heldLock(key)?.leaseId != lock["lease_id"]?.stringValue else { return nil }
            var object = JSONObject([("key", .string(key)), ("owner", lock["owner"] ?? .null),
                                     ("since", lock["acquired_at"] ?? .null), ("expires_at", lock["lease_expires_at"] ?? .null)])
            if let why = lock["metadata"]?["reason"], !why.isNull { object["reason"] = why }
            if let waiters = lock["waiters"]?.intValue, waiters > 0 { object["waiters"] = .int(waiters) }
            return .object(object)
        }
        if conflicts.isEmpty {
            // Freed between the refusal and the listing.
            conflicts = [.object(JSONObject([("key", .string(conflictAt)), ("owner", .null), ("since", .null), ("expires_at", .null)]))]
        }
        let hint = LockPlan.conflictHint(conflicts, waited: waitMs > 0, now: now())
        return ToolOutcome(structured: ["granted": [], "conflicts": .array(conflicts), "hint": .string(hint)],
                           summary: "Not locked: " + hint)
    }

    private func release(_ taken: [(key: String, leaseId: String)]) async {
        for (key, leaseId) in taken.reversed() {
            _ = try? await session.request("ReleaseResourceLock", ["resource_key": .string(key), "lease_id": .string(leaseId)])
            session.dropLock(key: key, leaseId: leaseId)
        }
    }

    func unlock(_ args: Arguments) async throws -> ToolOutcome {
        let keys = LockPlan.order(try args.strings("keys") ?? session.heldLockKeys())
        var released: [String] = [], notHeld: [String] = [], lost: [String] = []
        for key in keys {
            guard let held = session.heldLock(key) else { notHeld.append(key); continue }
            do {
                _ = try await session.request("ReleaseResourceLock", ["resource_key": .string(key), "lease_id": .string(held.leaseId)])
                released.append(key)
            } catch let refused as AgentdError where refused.reason == "LOCK_NOT_HELD" {
                lost.append(key)
            }
            session.dropLock(key: key, leaseId: held.leaseId)
        }
        var result = JSONObject([("released", .array(released.map { .string($0) }))])
        if !notHeld.isEmpty { result["not_held"] = .array(notHeld.map { .string($0) }) }
        if !lost.isEmpty { result["already_lost"] = .array(lost.map { .string($0) }) }
        var summary = released.isEmpty ? "Released nothing." : "Released \(list(released))."
        if !notHeld.isEmpty { summary += " Not held by this session: \(list(notHeld))." }
        if !lost.isEmpty { summary += " Already lost before this call (expired or taken): \(list(lost))." }
        return ToolOutcome(structured: .object(result), summary: summary)
    }

    func locks(_ args: Arguments) async throws -> ToolOutcome {
        var params = JSONObject()
        if let prefix = try args.optionalString("prefix") { params["prefix"] = .string(prefix) }
        let answer = try await session.request("ListResourceLocks", .object(params))
        let current = now()
        let locks: [JSONValue] = (answer["locks"]?.arrayValue ?? []).map { lock in
            let key = lock["resource_key"]?.stringValue ?? ""
            var object = JSONObject([("key", .string(key)), ("owner", lock["owner"] ?? .null),
                                     ("expires_at", lock["lease_expires_at"] ?? .null)])
            if let expires = lock["lease_expires_at"]?.intValue { object["expires_in_s"] = .int(max(expires - current, 0)) }
            object["fencing_token"] = lock["fencing_token"] ?? .null
            object["waiters"] = lock["waiters"] ?? .int(0)
            if let why = lock["metadata"]?["reason"], !why.isNull { object["reason"] = why }
            object["mine"] = .bool(session.heldLock(key)?.leaseId == lock["lease_id"]?.stringValue)
            return .object(object)
        }
        let summary = locks.isEmpty ? "No locks are held." : "\(locks.count) lock\(locks.count == 1 ? " is" : "s are") held."
        return ToolOutcome(structured: ["locks": .array(locks)], summary: summary)
    }

    // MARK: - Journal

    func events(_ args: Arguments) async throws -> ToolOutcome {
        let taskId = try args.string("task_id")
        var params = JSONObject([("task_id", .string(taskId))])
        params["after_seq"] = .int(try args.integer("after_seq", in: 0...Int64.max) ?? 0)
        params["limit"] = .int(try args.integer("limit", in: 1...1000) ?? 100)
        if let node = try args.optionalString("node_id") { params["node_id"] = .string(node) }
        let waitMs = AgentdTools.waitMilliseconds(try args.number("wait_s", in: 0...Double(Int32.max)) ?? 0)
        if waitMs > 0 { params["wait_ms"] = .int(waitMs) }
        let answer = try await session.request("ReadEvents", .object(params))
        let events: [JSONValue] = (answer["events"]?.arrayValue ?? []).map { event in
            let node = event["node_id"]?.stringValue ?? ""
            var object = JSONObject([("seq", event["seq"] ?? .null), ("node_id", .string(node))])
            if let name = session.name(task: taskId, node: node) { object["name"] = .string(name) }
            object["action_type"] = event["action_type"] ?? .null
            object["payload"] = event["payload"] ?? .null
            object["timestamp"] = event["timestamp"] ?? .null
            return .object(object)
        }
        let next = answer["next_seq"] ?? .int(0)
        let summary = events.isEmpty ? "No new events; call again with after_seq \(next) (and wait_s to wait for them)."
                                     : "\(events.count) event\(events.count == 1 ? "" : "s"); read on with after_seq \(next)."
        return ToolOutcome(structured: ["events": .array(events), "next_seq": next], summary: summary)
    }

    private func malformed(_ method: String) -> ToolFailure {
        ToolFailure(message: "agentd answered \(method) without the fields this server expects", reason: "INTERNAL",
                    next: "check that agentd and this server are the same version")
    }
}

func list(_ items: [String]) -> String { items.joined(separator: ", ") }

/// Seconds on the monotonic clock, for the deadline of a multi-key wait.
enum Monotonic {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
