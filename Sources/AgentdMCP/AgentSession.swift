import AgentdClient
import Foundation

/// What one MCP session holds in agentd, and the one connection it holds it through.
///
/// Every lease and lock is taken with `release_on_disconnect`, so it lives exactly as long as
/// the connection, which lives as long as this process: when the agent exits (its stdin
/// closes) or is killed, the daemon frees everything at once. While the session lives it
/// heartbeats each of them itself, every third of its TTL, so liveness follows the agent's
/// process and not how often the model remembers to call a tool.
///
/// Thread-safe: tool calls run on the concurrency pool, heartbeats on their Repeater threads,
/// answers on the connection's reader thread.
final class AgentSession: @unchecked Sendable {
    struct HeldLock {
        var leaseId: String
        var fencingToken: Int64?
        var ttl: Int64
        var expiresAt: Int64?
        var repeater: Repeater?
    }

    struct NodeRef: Hashable {
        var taskId: String
        var nodeId: String
    }

    struct HeldLease {
        var leaseId: String
        var name: String?
        var ttl: Int64
        var repeater: Repeater?
    }

    let agent: String
    let endpoint: String
    private let connect: @Sendable () throws -> DaemonLink
    private let lock = NSLock()
    private var link: DaemonLink?
    private var provider: String?
    private var locks: [String: HeldLock] = [:]
    private var leases: [NodeRef: HeldLease] = [:]
    private var notices: [String] = []
    private var names: [String: [String: String]] = [:]
    private var defaultLeaseTTL: Int64?
    private var closed = false

    init(agent: String, endpoint: String, connect: @escaping @Sendable () throws -> DaemonLink) {
        self.agent = agent
        self.endpoint = endpoint
        self.connect = connect
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    // MARK: - Requests

    /// Sends one request on the session's connection (opened on first use) and waits for its
    /// answer without holding a thread of the pool.
    func request(_ method: String, _ params: JSONValue) async throws -> JSONValue {
        let link = try currentLink()
        return try await withCheckedThrowingContinuation { continuation in
            link.send(method, params) { continuation.resume(with: $0) }
        }
    }

    private func currentLink() throws -> DaemonLink {
        let (current, opened): (DaemonLink, Bool) = try locked {
            if closed { throw ConnectionError.closed("the MCP session is ending") }
            if let link { return (link, false) }
            let opened = try connect()
            link = opened
            return (opened, true)
        }
        // Outside the lock: a connection that has already ended runs the handler at once, and
        // the handler takes the lock.
        if opened {
            current.onClose { [weak self, weak current] why in
                guard let self, let current else { return }
                self.connectionEnded(current, why)
            }
        }
        return current
    }

    /// The connection ended under the session (the daemon stopped or restarted): what it held
    /// is gone, and the next tool call says so and opens a new connection.
    private func connectionEnded(_ ended: DaemonLink, _ why: ConnectionError) {
        let repeaters: [Repeater] = locked {
            guard link === ended, !closed else { return [] }
            link = nil
            var lost: [String] = []
            if !locks.isEmpty { lost.append("the locks " + locks.keys.sorted().joined(separator: ", ")) }
            if !leases.isEmpty {
                lost.append("the leases on " + leases.map { $0.value.name ?? $0.key.nodeId }.sorted().joined(separator: ", "))
            }
            if !lost.isEmpty {
                notices.append("The connection to agentd ended (\(why)); \(lost.joined(separator: " and ")) that this session held were released by the daemon. Take them again before going on.")
            }
            let repeaters = locks.values.compactMap(\.repeater) + leases.values.compactMap(\.repeater)
            locks = [:]
            leases = [:]
            return repeaters
        }
        repeaters.forEach { $0.stop() }
    }

    /// Ends the session: heartbeats stop and the connection closes, so the daemon frees
    /// everything it held at once.
    func close() {
        let (repeaters, link): ([Repeater], DaemonLink?) = locked {
            closed = true
            let repeaters = locks.values.compactMap(\.repeater) + leases.values.compactMap(\.repeater)
            let link = self.link
            locks = [:]
            leases = [:]
            self.link = nil
            return (repeaters, link)
        }
        repeaters.forEach { $0.stop() }
        link?.close()
    }

    // MARK: - What the session knows

    /// The MCP client's name (from `initialize`), recorded as the `provider` of locks.
    var clientName: String? {
        get { locked { provider } }
        set { locked { provider = newValue } }
    }

    /// Things that happened between tool calls (a heartbeat refused, the connection lost),
    /// handed to the next tool result once.
    func takeNotices() -> [String] {
        locked {
            defer { notices = [] }
            return notices
        }
    }

    func rememberNames(task: String, _ namesById: [String: String]) {
        guard !namesById.isEmpty else { return }
        locked { names[task, default: [:]].merge(namesById) { _, new in new } }
    }

    func name(task: String, node: String) -> String? {
        locked { names[task]?[node] }
    }

    /// The daemon's node timeout, the lease TTL when the caller names none (asked once).
    func leaseTTL() async throws -> Int64 {
        if let ttl = locked({ defaultLeaseTTL }) { return ttl }
        let health = try await request("Health", [:])
        let ttl = max(health["running_timeout_secs"]?.intValue ?? 300, 1)
        locked { defaultLeaseTTL = ttl }
        return ttl
    }

    // MARK: - Locks

    func heldLock(_ key: String) -> HeldLock? { locked { locks[key] } }
    func heldLockKeys() -> [String] { locked { locks.keys.sorted() } }

    /// Records a granted lock and starts its heartbeat.
    func holdLock(key: String, leaseId: String, fencingToken: Int64?, ttl: Int64, expiresAt: Int64?) {
        let repeater = Repeater(every: Double(ttl) / 3) { [weak self] in
            self?.heartbeatLock(key: key, leaseId: leaseId, ttl: ttl) ?? false
        }
        let replaced: Repeater? = locked {
            let old = locks[key]?.repeater
            locks[key] = HeldLock(leaseId: leaseId, fencingToken: fencingToken, ttl: ttl, expiresAt: expiresAt, repeater: repeater)
            return old
        }
        replaced?.stop()
    }

    /// Forgets a lock (released, or lost) and stops its heartbeat, if it is still this lease.
    @discardableResult
    func dropLock(key: String, leaseId: String) -> Bool {
        let repeater: Repeater?? = locked {
            guard let held = locks[key], held.leaseId == leaseId else { return nil }
            locks[key] = nil
            return .some(held.repeater)
        }
        guard let repeater else { return false }
        repeater?.stop()
        return true
    }

    /// One heartbeat, sent without waiting for its answer: a parked request ahead of it on the
    /// connection holds back the answer but not the heartbeat's effect. Returns false once the
    /// lock is no longer this session's, which ends its Repeater.
    private func heartbeatLock(key: String, leaseId: String, ttl: Int64) -> Bool {
        guard let link = locked({ locks[key]?.leaseId == leaseId ? self.link : nil }) else { return false }
        link.send("HeartbeatResourceLock", ["resource_key": .string(key), "lease_id": .string(leaseId), "ttl_secs": .int(ttl)]) {
            [weak self] outcome in
            guard let self, case .failure(let error) = outcome, let refused = error as? AgentdError else { return }
            if self.dropLock(key: key, leaseId: leaseId) {
                self.locked { self.notices.append("The lock on \(key) was lost: agentd refused its heartbeat (\(refused.message)). Call lock again before touching it.") }
            }
        }
        return true
    }

    // MARK: - Leases

    func heldLease(_ node: NodeRef) -> HeldLease? { locked { leases[node] } }

    func holdLease(_ node: NodeRef, leaseId: String, name: String?, ttl: Int64) {
        let repeater = Repeater(every: Double(ttl) / 3) { [weak self] in
            self?.heartbeatLease(node, leaseId: leaseId, ttl: ttl) ?? false
        }
        let replaced: Repeater? = locked {
            let old = leases[node]?.repeater
            leases[node] = HeldLease(leaseId: leaseId, name: name, ttl: ttl, repeater: repeater)
            return old
        }
        replaced?.stop()
    }

    @discardableResult
    func dropLease(_ node: NodeRef, leaseId: String) -> Bool {
        let repeater: Repeater?? = locked {
            guard let held = leases[node], held.leaseId == leaseId else { return nil }
            leases[node] = nil
            return .some(held.repeater)
        }
        guard let repeater else { return false }
        repeater?.stop()
        return true
    }

    private func heartbeatLease(_ node: NodeRef, leaseId: String, ttl: Int64) -> Bool {
        guard let link = locked({ leases[node]?.leaseId == leaseId ? self.link : nil }) else { return false }
        link.send("HeartbeatNode", ["task_id": .string(node.taskId), "node_id": .string(node.nodeId),
                                    "lease_id": .string(leaseId), "lease_ttl_secs": .int(ttl)]) { [weak self] outcome in
            guard let self, case .failure(let error) = outcome, let refused = error as? AgentdError else { return }
            let label = self.heldLease(node)?.name.map { "\"\($0)\"" } ?? node.nodeId
            if self.dropLease(node, leaseId: leaseId) {
                self.locked { self.notices.append("The lease on node \(label) of task \(node.taskId) was lost: agentd refused its heartbeat (\(refused.message)). Stop working on it and call work_next.") }
            }
        }
        return true
    }
}
