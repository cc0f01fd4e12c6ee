import AgentdBase
import AgentdCore
/// Turns one request line into one answer: decode the envelope, route to the Coordinator,
/// encode the result (or the error) into the connection's output buffer.
package final class RequestHandler {
    /// Facts about the database that Health and Metrics report.
    package struct StoreFacts {
        package var schemaVersion: Int64
        package var latestSchemaVersion: Int64

        package init(schemaVersion: Int64, latestSchemaVersion: Int64) {
            self.schemaVersion = schemaVersion
            self.latestSchemaVersion = latestSchemaVersion
        }
    }

    package let coordinator: Coordinator
    package var storeFacts: StoreFacts
    /// The owner and lease owner of a request that names none: the agent of an authenticated
    /// network connection, set around each of its requests; nil means "anonymous".
    package var defaultOwner: String?
    private let methods = MethodTable()
    private var tape = JSONTape()
    private let startedMicros: UInt64
    private let recentEvents = RecentEventsCache()
    private var uptimeSecs: UInt64 { (coordinator.clock.monotonicMicros &- startedMicros) / 1_000_000 }
    private lazy var interfaceDescription: [UInt8] = InterfaceDescription.json()
    /// When true, a TaskStatus of a task bigger than one slice is answered over several loop
    /// turns: `handle` writes its head and leaves the stream in `startedStream` for the caller
    /// to continue (the Server does). When false (tests, fuzzing), every answer is whole.
    package var streamsBigAnswers = false
    /// The stream the last `handle` started, if any; the caller takes it.
    package var startedStream: TaskStatusStream?

    package init(coordinator: Coordinator, storeFacts: StoreFacts) {
        self.coordinator = coordinator
        self.storeFacts = storeFacts
        self.startedMicros = coordinator.clock.monotonicMicros
    }

    /// A request that waits (`wait_ms`): the Coordinator's waiter and the id to answer with.
    package struct ParkedRequest {
        package var waiter: UInt64
        /// The request's id, copied out of the read buffer.
        package var id: EchoedId
    }

    /// What a method did with its request.
    package enum Reply {
        case written
        case parked(UInt64)
        /// The head is written; the rest (and the envelope's end) follow in slices.
        case streaming(TaskStatusStream)
    }

    /// Answers one line (already without its "\n") into `out`, or parks it and says so.
    /// Blank lines get no answer.
    @discardableResult
    package func handle(line: UnsafeRawBufferPointer, connection: UInt64, into out: inout [UInt8]) -> ParkedRequest? {
        let trimmed = Self.trimmed(line)
        guard !trimmed.isEmpty else { return nil }
        do {
            try tape.parse(trimmed)
        } catch {
            Self.appendError(RequestError.parse(error.message), id: .none, to: &out)
            return nil
        }
        let document = JSONDocument(tape: tape, input: trimmed)
        guard document.kind(document.root) == .object else {
            Self.appendError(.invalidRequest("invalid type: \(Params.describe(document.kind(document.root))), expected a request object"),
                             id: .none, to: &out)
            return nil
        }
        guard let methodIndex = document.member(document.root, "method") else {
            Self.appendError(.invalidRequest("missing field `method`"), id: .none, to: &out)
            return nil
        }
        guard document.kind(methodIndex) == .string else {
            Self.appendError(.invalidRequest("invalid type for `method`: \(Params.describe(document.kind(methodIndex))), expected a string"),
                             id: .none, to: &out)
            return nil
        }
        let id = EchoedId(document)
        let method: Method?
        if !document.stringHasEscapes(methodIndex) {
            method = methods.lookup(document.rawStringContents(methodIndex))
        } else {
            method = methods.lookup(document.string(methodIndex))
        }

        guard let method else {
            Self.appendError(.unknownMethod(document.string(methodIndex)), id: id, to: &out)
            return nil
        }
        let start = out.count
        Self.appendResultOpening(id: id, to: &out)
        do {
            var params = try Params(document: document, object: document.member(document.root, "params"),
                                    lenient: method.ignoresParams)
            params.method = method
            switch try dispatch(method, params, connection: connection, into: &out) {
            case .written:
                out.appendASCII("}\n")
            case let .parked(waiter):
                out.removeSubrange(start...)
                return ParkedRequest(waiter: waiter, id: id.owned())
            case let .streaming(stream):
                startedStream = stream
            }
        } catch let error as RequestError {
            out.removeSubrange(start...)
            Self.appendError(error, id: id, to: &out)
        } catch let refusal as CoordinatorError {
            out.removeSubrange(start...)
            Self.appendError(RequestError(refusal), id: id, to: &out)
        } catch {
            out.removeSubrange(start...)
            Self.appendError(.init(code: .stateRefused, reason: "INTERNAL", message: "\(error)"), id: id, to: &out)
        }
        return nil
    }

    /// The answer of a parked request, from how it ended.
    package func appendResolution(_ outcome: WaiterOutcome, of parked: ParkedRequest, to out: inout [UInt8]) {
        Self.appendResultOpening(id: parked.id, to: &out)
        switch outcome {
        case let .acquired(ref):
            ResultEncoding.acquired(ref.index, of: coordinator.task(slot: ref.task)!,
                                    eventLimit: coordinator.settings.contextEventLimit,
                                    recentEvents: recentEvents, to: &out)
        case let .lockGranted(slot):
            appendLock(coordinator.lock(slot: slot)!, withUpdatedAt: false, to: &out)
        case let .events(task, node, afterSeq, limit):
            appendEvents(coordinator.task(slot: task)!, node: node, afterSeq: afterSeq, limit: limit, to: &out)
        case let .nothing(kind):
            if case let .events(_, _, afterSeq, _) = kind {
                out.appendASCII("{\"events\":[],\"next_seq\":")
                out.appendJSONInt(afterSeq)
                out.append(UInt8(ascii: "}"))
            } else {
                out.appendASCII("null")
            }
        }
        out.appendASCII("}\n")
    }

    // MARK: - Envelope

    /// `{"id":ID,"result":` (or `{"result":` when the request had no id): the answer's opening;
    /// the result and `}\n` follow.
    package static func appendResultOpening(id: EchoedId, to out: inout [UInt8]) {
        if id.isPresent {
            out.appendASCII("{\"id\":")
            id.append(to: &out)
            out.appendASCII(",\"result\":")
        } else {
            out.appendASCII("{\"result\":")
        }
    }

    package static func appendError(_ error: RequestError, id: EchoedId, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        if id.isPresent {
            out.appendASCII("\"id\":")
            id.append(to: &out)
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

    package static func trimmed(_ line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var lower = 0, upper = line.count
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A || b == 0x0B || b == 0x0C }
        while lower < upper && isSpace(line[lower]) { lower += 1 }
        while upper > lower && isSpace(line[upper - 1]) { upper -= 1 }
        return UnsafeRawBufferPointer(rebasing: line[lower..<upper])
    }

    // MARK: - Methods

    private func dispatch(_ method: Method, _ params: Params, connection: UInt64, into out: inout [UInt8]) throws -> Reply {
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
            ResultEncoding.metrics(coordinator.metricsAsOfNow(), uptimeSecs: uptimeSecs, storeFacts: storeFacts, to: &out)
        case .registerTask:
            let goal = try params.requiredString(.goal)
            // An explicit null is kept, as the original keeps it; only absence means {}.
            let context = params.payload(.context) ?? JSONPayload.emptyObject
            let nodes = try NodeDefinitionDecoder.decode(params, .initialNodes)
            let taskId = try coordinator.registerTask(goal: goal, context: context, nodes: nodes)
            out.appendASCII("{\"task_id\":")
            out.appendQuotedUUID(taskId)
            out.append(UInt8(ascii: "}"))
        case .acquireNextNode:
            let taskId = try params.requiredUUID(.taskId)
            let owner = try params.string(.leaseOwner) ?? defaultOwner ?? "anonymous"
            let outcome = try coordinator.acquireNextNode(
                task: taskId, owner: owner, leaseTTLSecs: try params.seconds(.leaseTTL),
                releaseOnDisconnect: try params.bool(.releaseOnDisconnect) ?? false,
                connection: connection, waitMs: try params.milliseconds(.waitForNode) ?? 0)
            switch outcome {
            case let .node(ref):
                ResultEncoding.acquired(ref.index, of: coordinator.task(slot: ref.task)!,
                                        eventLimit: coordinator.settings.contextEventLimit,
                                    recentEvents: recentEvents, to: &out)
            case .nothing:
                out.appendASCII("null")
            case let .parked(waiter):
                return .parked(waiter)
            }
        case .commitEvent:
            let taskId = try params.requiredUUID(.taskId)
            let nodeId = try params.requiredUUID(.nodeId)
            let leaseId = try params.uuid(.optionalLeaseId)
            let actionType = try params.string(.actionType) ?? "COMMIT_EVENT"
            let payload = try params.requiredPayload(.eventPayload)
            let eventId = try coordinator.commitEvent(task: taskId, node: nodeId, lease: leaseId,
                                                      actionType: actionType, payload: payload)
            appendEventId(eventId, to: &out)
        case .heartbeatNode:
            let taskId = try params.requiredUUID(.taskId)
            let nodeId = try params.requiredUUID(.nodeId)
            let leaseId = try params.requiredUUID(.leaseId)
            try coordinator.heartbeatNode(task: taskId, node: nodeId, lease: leaseId,
                                          leaseTTLSecs: try params.seconds(.leaseTTL))
            out.appendASCII("{\"ok\":true}")
        case .completeNode:
            let taskId = try params.requiredUUID(.taskId)
            let nodeId = try params.requiredUUID(.nodeId)
            let leaseId = try params.requiredUUID(.leaseId)
            let result = try params.requiredPayload(.resultPayload)
            appendEventId(try coordinator.completeNode(task: taskId, node: nodeId, lease: leaseId, result: result), to: &out)
        case .failNode:
            let taskId = try params.requiredUUID(.taskId)
            let nodeId = try params.requiredUUID(.nodeId)
            let leaseId = try params.requiredUUID(.leaseId)
            let error = try params.requiredPayload(.errorPayload)
            appendEventId(try coordinator.failNode(task: taskId, node: nodeId, lease: leaseId, error: error), to: &out)
        case .taskStatus:
            let taskId = try params.requiredUUID(.taskId)
            let offset = try params.nonNegativeInt(.nodeOffset)
            let limit = try params.optionalPageSize(.nodeLimit)
            let task = try coordinator.taskAsOfNow(taskId)
            if offset != nil || limit != nil {
                let first = Int(min(offset ?? 0, Int64(task.nodes.count)))
                let end = min(task.nodes.count, first + (limit ?? 1000))
                ResultEncoding.taskStatusPage(task, nodes: first..<end, to: &out)
            } else if streamsBigAnswers && task.nodes.count > Int(TaskStatusStream.sliceNodes) {
                return .streaming(TaskStatusStream(coordinator: coordinator, task: task, into: &out))
            } else {
                ResultEncoding.taskStatus(task, to: &out)
            }
        case .acquireResourceLock:
            var request = LockRequest(key: try params.requiredString(.resourceKey))
            request.owner = try params.string(.lockOwner) ?? defaultOwner ?? "anonymous"
            request.provider = try params.string(.provider)
            request.ttlSecs = try params.seconds(.lockTTL)
            request.taskId = try params.uuid(.lockTaskId)
            request.nodeId = try params.uuid(.lockNodeId)
            if let metadata = params.payload(.metadata) { request.metadata = metadata }
            if try params.bool(.releaseOnDisconnect) ?? false { request.boundConnection = connection }
            switch try coordinator.acquireLock(request, connection: connection,
                                               waitMs: try params.milliseconds(.waitForLock) ?? 0) {
            case let .granted(slot):
                appendLock(coordinator.lock(slot: slot)!, withUpdatedAt: false, to: &out)
            case .held:
                out.appendASCII("null")
            case let .parked(waiter):
                return .parked(waiter)
            }
        case .heartbeatResourceLock:
            let key = try params.requiredString(.resourceKey)
            let leaseId = try params.requiredUUID(.leaseId)
            let ttl = try params.seconds(.lockTTL)
            try coordinator.heartbeatLock(key: key, lease: leaseId, ttlSecs: ttl)
            out.appendASCII("{\"ok\":true}")
        case .releaseResourceLock:
            let key = try params.requiredString(.resourceKey)
            let leaseId = try params.requiredUUID(.leaseId)
            try coordinator.releaseLock(key: key, lease: leaseId)
            out.appendASCII("{\"ok\":true}")
        case .listResourceLocks:
            let prefix = try params.string(.prefix) ?? ""
            out.appendASCII("{\"locks\":[")
            for (offset, lock) in coordinator.locksAsOfNow(prefix: prefix).enumerated() {
                if offset > 0 { out.append(UInt8(ascii: ",")) }
                appendLock(lock, withUpdatedAt: true, to: &out)
            }
            out.appendASCII("]}")
        case .addNodes:
            let taskId = try params.requiredUUID(.taskId)
            let nodes = try NodeDefinitionDecoder.decode(params, .nodes)
            let range = try coordinator.addNodes(task: taskId, nodes: nodes)
            let task = try coordinator.task(taskId)
            out.appendASCII("{\"node_ids\":[")
            for index in range {
                if index > range.lowerBound { out.append(UInt8(ascii: ",")) }
                out.appendQuotedUUID(task.nodes[Int(index)].id)
            }
            out.appendASCII("]}")
        case .retryNode:
            try coordinator.retryNode(task: try params.requiredUUID(.taskId), node: try params.requiredUUID(.failedNodeId))
            out.appendASCII("{\"ok\":true}")
        case .cancelTask:
            try coordinator.cancelTask(task: try params.requiredUUID(.taskId))
            out.appendASCII("{\"ok\":true}")
        case .deleteTask:
            let taskId = try params.requiredUUID(.closedTaskId)
            try coordinator.deleteTask(task: taskId)
            recentEvents.forget(taskId)
            out.appendASCII("{\"ok\":true}")
        case .listTasks:
            var status: TaskStatus? = nil
            if let name = try params.string(.taskStatus) {
                guard let parsed = TaskStatus(name: name) else {
                    throw RequestError.invalidParams("field `status` must be ACTIVE, COMPLETED, FAILED or CANCELLED")
                }
                status = parsed
            }
            let limit = try params.pageSize(.pageSize)
            let tasks = try coordinator.listTasks(status: status, limit: limit, after: try params.uuid(.after))
            out.appendASCII("{\"tasks\":[")
            for (offset, task) in tasks.enumerated() {
                if offset > 0 { out.append(UInt8(ascii: ",")) }
                ResultEncoding.taskListing(task, to: &out)
            }
            out.appendASCII("],\"next_after\":")
            // A full page may have more behind it; the client asks again from the last one.
            out.appendOptionalUUID(tasks.count == limit ? tasks.last?.id : nil)
            out.append(UInt8(ascii: "}"))
        case .readEvents:
            let afterSeq = try params.nonNegativeInt(.afterSeq) ?? 0
            let limit = try params.pageSize(.pageSize)
            switch try coordinator.readEvents(task: try params.requiredUUID(.taskId), node: try params.uuid(.eventsNodeId),
                                              afterSeq: afterSeq, limit: limit, connection: connection,
                                              waitMs: try params.milliseconds(.waitForEvents) ?? 0) {
            case let .ready(task, node):
                appendEvents(coordinator.task(slot: task)!, node: node, afterSeq: afterSeq, limit: limit, to: &out)
            case let .parked(waiter):
                return .parked(waiter)
            }
        }
        return .written
    }

    private func appendLock(_ lock: ResourceLock, withUpdatedAt: Bool, to out: inout [UInt8]) {
        ResultEncoding.lock(lock, withUpdatedAt: withUpdatedAt, waiters: coordinator.waiterCount(forLock: lock.key), to: &out)
    }

    /// `{events:[...], next_seq}`: next_seq is what to pass as after_seq next time.
    private func appendEvents(_ task: TaskRecord, node: Int32?, afterSeq: Int64, limit: Int, to out: inout [UInt8]) {
        out.appendASCII("{\"events\":[")
        var last = afterSeq
        for (offset, position) in coordinator.events(of: task, node: node, afterSeq: afterSeq, limit: limit).enumerated() {
            if offset > 0 { out.append(UInt8(ascii: ",")) }
            let event = task.events[Int(position)]
            ResultEncoding.event(event, of: task, to: &out)
            last = event.seq
        }
        out.appendASCII("],\"next_seq\":")
        out.appendJSONInt(last)
        out.append(UInt8(ascii: "}"))
    }

    private func appendEventId(_ id: UUID128, to out: inout [UInt8]) {
        out.appendASCII("{\"event_id\":")
        out.appendQuotedUUID(id)
        out.append(UInt8(ascii: "}"))
    }
}
