/// Turns one request line into one answer: decode the envelope, route to the Coordinator,
/// encode the result (or the error) into the connection's output buffer.
final class RequestHandler {
    /// Facts about the database that Health and Metrics report.
    struct StoreFacts {
        var schemaVersion: Int64
        var latestSchemaVersion: Int64
    }

    let coordinator: Coordinator
    var storeFacts: StoreFacts
    private let methods = MethodTable()
    private var tape = JSONTape()
    private let startedMicros: UInt64
    private lazy var interfaceDescription: [UInt8] = InterfaceDescription.json()

    init(coordinator: Coordinator, storeFacts: StoreFacts) {
        self.coordinator = coordinator
        self.storeFacts = storeFacts
        self.startedMicros = coordinator.clock.monotonicMicros
    }

    /// Answers one line (already without its "\n"). Blank lines get no answer.
    func handle(line: UnsafeRawBufferPointer, connection: UInt64, into out: inout [UInt8]) {
        let trimmed = Self.trimmed(line)
        guard !trimmed.isEmpty else { return }
        do {
            try tape.parse(trimmed)
        } catch {
            Self.appendError(RequestError.parse(error.message), id: nil, to: &out)
            return
        }
        let document = JSONDocument(tape: tape, input: trimmed)
        guard document.kind(document.root) == .object else {
            Self.appendError(.invalidRequest("invalid type: \(Params.describe(document.kind(document.root))), expected a request object"),
                             id: nil, to: &out)
            return
        }
        guard let methodIndex = document.member(document.root, "method") else {
            Self.appendError(.invalidRequest("missing field `method`"), id: nil, to: &out)
            return
        }
        guard document.kind(methodIndex) == .string else {
            Self.appendError(.invalidRequest("invalid type for `method`: \(Params.describe(document.kind(methodIndex))), expected a string"),
                             id: nil, to: &out)
            return
        }
        // A null id is no id, as the original reads it.
        var id: UnsafeRawBufferPointer? = nil
        var compactId: [UInt8] = []
        if let idIndex = document.member(document.root, "id"), document.kind(idIndex) != .null {
            if document.kind(idIndex) == .object || document.kind(idIndex) == .array {
                document.appendCompact(idIndex, to: &compactId)
            } else {
                id = document.raw(idIndex)
            }
        }
        let method: Method?
        if !document.stringHasEscapes(methodIndex) {
            method = methods.lookup(document.rawStringContents(methodIndex))
        } else {
            method = methods.lookup(document.string(methodIndex))
        }

        let writeId: (inout [UInt8]) -> Void = { out in
            if let id { out.append(contentsOf: id) } else { out.append(contentsOf: compactId) }
        }
        let hasId = id != nil || !compactId.isEmpty
        guard let method else {
            Self.appendError(.unknownMethod(document.string(methodIndex)), hasId: hasId, writeId: writeId, to: &out)
            return
        }
        let start = out.count
        if hasId {
            out.appendASCII("{\"id\":")
            writeId(&out)
            out.appendASCII(",\"result\":")
        } else {
            out.appendASCII("{\"result\":")
        }
        do {
            let params = try Params(document: document, object: document.member(document.root, "params"))
            try dispatch(method, params, connection: connection, into: &out)
            out.appendASCII("}\n")
        } catch let error as RequestError {
            out.removeSubrange(start...)
            Self.appendError(error, hasId: hasId, writeId: writeId, to: &out)
        } catch let refusal as CoordinatorError {
            out.removeSubrange(start...)
            Self.appendError(RequestError(refusal), hasId: hasId, writeId: writeId, to: &out)
        } catch {
            out.removeSubrange(start...)
            Self.appendError(.init(code: .stateRefused, reason: "INTERNAL", message: "\(error)"),
                             hasId: hasId, writeId: writeId, to: &out)
        }
    }

    // MARK: - Envelope

    static func appendError(_ error: RequestError, id: UnsafeRawBufferPointer?, to out: inout [UInt8]) {
        appendError(error, hasId: id != nil, writeId: { out in if let id { out.append(contentsOf: id) } }, to: &out)
    }

    static func appendError(_ error: RequestError, hasId: Bool, writeId: (inout [UInt8]) -> Void,
                            to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        if hasId {
            out.appendASCII("\"id\":")
            writeId(&out)
            out.append(UInt8(ascii: ","))
        }
        out.appendASCII("\"error\":{\"code\":")
        out.appendJSONInt(error.code.rawValue)
        out.appendASCII(",\"message\":")
        out.appendJSONString(error.message)
        out.appendASCII(",\"data\":{\"reason\":")
        out.appendJSONString(error.reason)
        out.appendASCII("}}}\n")
    }

    private static func trimmed(_ line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var lower = 0, upper = line.count
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A || b == 0x0B || b == 0x0C }
        while lower < upper && isSpace(line[lower]) { lower += 1 }
        while upper > lower && isSpace(line[upper - 1]) { upper -= 1 }
        return UnsafeRawBufferPointer(rebasing: line[lower..<upper])
    }

    // MARK: - Methods

    private func dispatch(_ method: Method, _ params: Params, connection: UInt64, into out: inout [UInt8]) throws {
        switch method {
        case .describeInterface:
            out.append(contentsOf: interfaceDescription)
        case .health:
            out.appendASCII("{\"status\":\"ok\",\"database\":\"ok\",\"running_timeout_secs\":")
            out.appendJSONInt(coordinator.settings.nodeTimeoutSecs)
            out.appendASCII(",\"context_event_limit\":")
            out.appendJSONInt(Int64(coordinator.settings.contextEventLimit))
            out.append(UInt8(ascii: "}"))
        case .metrics:
            appendMetrics(to: &out)
        case .registerTask:
            let goal = try params.requiredString("goal")
            let context = params.payload("context").flatMap { $0 == Array("null".utf8) ? nil : $0 } ?? Array("{}".utf8)
            let nodes = try NodeDefinitionDecoder.decode(params, field: "initial_nodes")
            let taskId = try coordinator.registerTask(goal: goal, context: context, nodes: nodes)
            out.appendASCII("{\"task_id\":")
            out.appendQuotedUUID(taskId)
            out.append(UInt8(ascii: "}"))
        case .acquireNextNode:
            let taskId = try params.requiredUUID("task_id")
            let owner = try params.string("lease_owner") ?? "anonymous"
            if let ref = try coordinator.acquireNextNode(task: taskId, owner: owner) {
                ResultEncoding.acquired(ref.index, of: coordinator.task(slot: ref.task)!,
                                        eventLimit: coordinator.settings.contextEventLimit, to: &out)
            } else {
                out.appendASCII("null")
            }
        case .commitEvent:
            let taskId = try params.requiredUUID("task_id")
            let nodeId = try params.requiredUUID("node_id")
            let leaseId = try params.uuid("lease_id")
            let actionType = try params.string("action_type") ?? "COMMIT_EVENT"
            guard let payload = params.payload("payload") ?? params.payload("event_payload") else {
                throw params.missing("payload")
            }
            let eventId = try coordinator.commitEvent(task: taskId, node: nodeId, lease: leaseId,
                                                      actionType: actionType, payload: payload)
            appendEventId(eventId, to: &out)
        case .heartbeatNode:
            let taskId = try params.requiredUUID("task_id")
            let nodeId = try params.requiredUUID("node_id")
            let leaseId = try params.requiredUUID("lease_id")
            try coordinator.heartbeatNode(task: taskId, node: nodeId, lease: leaseId)
            out.appendASCII("{\"ok\":true}")
        case .completeNode:
            let taskId = try params.requiredUUID("task_id")
            let nodeId = try params.requiredUUID("node_id")
            let leaseId = try params.requiredUUID("lease_id")
            guard let result = params.payload("result_payload") ?? params.payload("payload") else {
                throw params.missing("result_payload")
            }
            appendEventId(try coordinator.completeNode(task: taskId, node: nodeId, lease: leaseId, result: result), to: &out)
        case .failNode:
            let taskId = try params.requiredUUID("task_id")
            let nodeId = try params.requiredUUID("node_id")
            let leaseId = try params.requiredUUID("lease_id")
            guard let error = params.payload("error_payload") ?? params.payload("payload") else {
                throw params.missing("error_payload")
            }
            appendEventId(try coordinator.failNode(task: taskId, node: nodeId, lease: leaseId, error: error), to: &out)
        case .taskStatus:
            let taskId = try params.requiredUUID("task_id")
            coordinator.expireDue()
            ResultEncoding.taskStatus(try coordinator.task(taskId), to: &out)
        case .acquireResourceLock:
            var request = LockRequest(key: try params.requiredString("resource_key"))
            request.owner = try params.string("owner") ?? "anonymous"
            request.provider = try params.string("provider")
            request.ttlSecs = try params.nonNegativeInt("ttl_secs")
            request.taskId = try params.uuid("task_id")
            request.nodeId = try params.uuid("node_id")
            if let metadata = params.payload("metadata"), metadata != Array("null".utf8) { request.metadata = metadata }
            if let slot = try coordinator.acquireLock(request) {
                ResultEncoding.lock(coordinator.lock(slot: slot)!, withUpdatedAt: false, to: &out)
            } else {
                out.appendASCII("null")
            }
        case .heartbeatResourceLock:
            let key = try params.requiredString("resource_key")
            let leaseId = try params.requiredUUID("lease_id")
            let ttl = try params.nonNegativeInt("ttl_secs")
            try coordinator.heartbeatLock(key: key, lease: leaseId, ttlSecs: ttl)
            out.appendASCII("{\"ok\":true}")
        case .releaseResourceLock:
            let key = try params.requiredString("resource_key")
            let leaseId = try params.requiredUUID("lease_id")
            try coordinator.releaseLock(key: key, lease: leaseId)
            out.appendASCII("{\"ok\":true}")
        case .listResourceLocks:
            coordinator.expireDue()
            out.appendASCII("{\"locks\":[")
            for (offset, lock) in coordinator.locksSortedByKey().enumerated() {
                if offset > 0 { out.append(UInt8(ascii: ",")) }
                ResultEncoding.lock(lock, withUpdatedAt: true, to: &out)
            }
            out.appendASCII("]}")
        }
    }

    private func appendEventId(_ id: UUID128, to out: inout [UInt8]) {
        out.appendASCII("{\"event_id\":")
        out.appendQuotedUUID(id)
        out.append(UInt8(ascii: "}"))
    }

    private func appendMetrics(to out: inout [UInt8]) {
        coordinator.expireDue()
        let c = coordinator.counters
        let totals = coordinator.totals
        let uptime = (coordinator.clock.monotonicMicros &- startedMicros) / 1_000_000
        out.appendASCII("{\"uptime_secs\":")
        out.appendJSONInt(Int64(uptime))
        out.appendASCII(",\"running_timeout_secs\":")
        out.appendJSONInt(coordinator.settings.nodeTimeoutSecs)
        out.appendASCII(",\"context_event_limit\":")
        out.appendJSONInt(Int64(coordinator.settings.contextEventLimit))
        out.appendASCII(",\"runtime\":{")
        let runtime: [(StaticString, UInt64)] = [
            ("registered_tasks", c.registeredTasks), ("acquire_attempts", c.acquireAttempts),
            ("acquired_nodes", c.acquiredNodes), ("acquisition_latency_micros_total", c.acquisitionLatencyMicrosTotal),
            ("average_acquisition_latency_micros", c.averageAcquisitionLatencyMicros),
            ("committed_events", c.committedEvents), ("heartbeats", c.heartbeats),
            ("completed_nodes", c.completedNodes), ("failed_nodes", c.failedNodes),
            ("timeout_rollbacks", c.timeoutRollbacks), ("acquired_resource_locks", c.acquiredResourceLocks),
            ("released_resource_locks", c.releasedResourceLocks),
        ]
        for (offset, (name, value)) in runtime.enumerated() {
            if offset > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            out.appendASCII(name)
            out.appendASCII("\":")
            out.appendJSONInt(Int64(bitPattern: value))
        }
        out.appendASCII("},\"database\":{\"schema_version\":")
        out.appendJSONInt(storeFacts.schemaVersion)
        out.appendASCII(",\"latest_schema_version\":")
        out.appendJSONInt(storeFacts.latestSchemaVersion)
        out.appendASCII(",\"total_tasks\":")
        out.appendJSONInt(Int64(totals.tasks))
        out.appendASCII(",\"total_nodes\":")
        out.appendJSONInt(Int64(totals.nodes))
        out.appendASCII(",\"total_events\":")
        out.appendJSONInt(Int64(totals.events))
        out.appendASCII(",\"active_resource_locks\":")
        out.appendJSONInt(Int64(coordinator.lockCount))
        // Expiry is exact (a deadline, not a sweep), so nothing expired is ever still held.
        out.appendASCII(",\"expired_resource_locks\":0,\"running_leases\":")
        out.appendJSONInt(Int64(totals.nodeCounts[Int(NodeStatus.running.rawValue)]))
        out.appendASCII(",\"expired_running_leases\":0,\"node_status_counts\":{")
        var first = true
        for status in [NodeStatus.completed, .failed, .pending, .running] where totals.nodeCounts[Int(status.rawValue)] > 0 {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: status.name.utf8)
            out.appendASCII("\":")
            out.appendJSONInt(Int64(totals.nodeCounts[Int(status.rawValue)]))
        }
        out.appendASCII("}}}")
    }
}
