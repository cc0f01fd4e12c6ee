import AgentdClient

/// What a tool answers: small JSON for programs (structured content) and the same as text for
/// the model, led by a sentence that says what happened and what to do next.
struct ToolOutcome: Equatable {
    var structured: JSONValue
    var summary: String
    var isError: Bool = false

    /// The text content: the summary, then the JSON (less the hint, which the summary says).
    var text: String {
        var shown = structured
        if case .object(var object) = shown {
            object["hint"] = nil
            object["notices"] = nil
            shown = .object(object)
        }
        return summary + "\n" + shown.compactText
    }

    /// Adds what happened since the last call (a lost lock, a dropped connection).
    func with(notices: [String]) -> ToolOutcome {
        guard !notices.isEmpty else { return self }
        var outcome = self
        if case .object(var object) = outcome.structured {
            object["notices"] = .array(notices.map { .string($0) })
            outcome.structured = .object(object)
        }
        outcome.summary = notices.map { "Note: " + $0 }.joined(separator: "\n") + "\n" + summary
        return outcome
    }
}

/// A tool call that did not do what was asked: the message, a stable reason (the daemon's
/// `error.data.reason`, or one of ours: INVALID_ARGUMENTS, NO_LEASE, AGENTD_UNREACHABLE,
/// CONNECTION_LOST), and the next step.
struct ToolFailure: Error, Equatable {
    var message: String
    var reason: String
    var next: String

    var outcome: ToolOutcome {
        ToolOutcome(structured: ["error": .string(message), "reason": .string(reason), "next": .string(next)],
                    summary: "Error (\(reason)): \(message). Next: \(next)", isError: true)
    }

    static func arguments(_ message: String, tool: String) -> ToolFailure {
        ToolFailure(message: message, reason: "INVALID_ARGUMENTS",
                    next: "call \(tool) again with the arguments its input schema describes")
    }

    /// The daemon's refusal or a broken connection, with the step that usually follows.
    static func from(_ error: Error, endpoint: String) -> ToolFailure {
        if let failure = error as? ToolFailure { return failure }
        if let refused = error as? AgentdError {
            let reason = refused.reason ?? "AGENTD_ERROR"
            return ToolFailure(message: refused.message, reason: reason, next: nextStep(reason))
        }
        if let broken = error as? ConnectionError {
            switch broken {
            case .unreachable:
                return ToolFailure(message: "\(broken)", reason: "AGENTD_UNREACHABLE",
                                   next: "start the daemon (`agentd serve`, or scripts/serve in its repository) on \(endpoint), or point this server at the right socket with --socket or AGENTD_SOCKET_PATH; then call the tool again")
            default:
                return ToolFailure(message: "\(broken)", reason: "CONNECTION_LOST",
                                   next: "call the tool again (a new connection is opened); the locks and leases this session held were released, so take them again before going on")
            }
        }
        if error is CancellationError {
            return ToolFailure(message: "the call was cancelled; nothing it took is held", reason: "CANCELLED",
                               next: "call the tool again if you still need it")
        }
        return ToolFailure(message: "\(error)", reason: "INTERNAL", next: "call the tool again; if it keeps failing, restart the agentd MCP server")
    }

    static func nextStep(_ reason: String) -> String {
        switch reason {
        case "TASK_NOT_FOUND": return "check the task_id (task_create returns it; ask whoever gave you the task)"
        case "NODE_NOT_FOUND": return "check the node_id: call task_status for the task's nodes"
        case "NODE_NOT_RUNNING", "LEASE_MISMATCH": return "your lease on this node is gone: call work_next for the next node"
        case "LOCK_NOT_HELD": return "the lock is no longer yours: call lock again before touching what it guards"
        case "INVALID_DAG": return "fix the nodes (names unique, `after` naming nodes of the task, no cycles) and call task_create again"
        case "TASK_CLOSED": return "the task was cancelled or has finished: stop working on it"
        case "INVALID_PARAMS": return "fix the argument the message names and call the tool again"
        default: return "read the message; call the tool again once the cause is fixed"
        }
    }
}

/// A tool's arguments, read with messages that name the argument and what it should be.
struct Arguments {
    let tool: String
    let values: JSONObject

    init(tool: String, _ values: JSONObject) {
        self.tool = tool
        self.values = values
    }

    func present(_ name: String) -> JSONValue? {
        guard let value = values[name], !value.isNull else { return nil }
        return value
    }

    func string(_ name: String) throws -> String {
        guard let value = try optionalString(name) else {
            throw ToolFailure.arguments("missing argument `\(name)` (a string)", tool: tool)
        }
        return value
    }

    func optionalString(_ name: String) throws -> String? {
        guard let value = present(name) else { return nil }
        guard let text = value.stringValue, !text.isEmpty else {
            throw ToolFailure.arguments("`\(name)` must be a non-empty string", tool: tool)
        }
        return text
    }

    /// A number of seconds (or a count) within `range`; a fraction is allowed for seconds.
    func number(_ name: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let value = present(name) else { return nil }
        guard let number = value.doubleValue, range.contains(number) else {
            throw ToolFailure.arguments("`\(name)` must be a number from \(format(range.lowerBound)) to \(format(range.upperBound))", tool: tool)
        }
        return number
    }

    func integer(_ name: String, in range: ClosedRange<Int64>) throws -> Int64? {
        guard let value = present(name) else { return nil }
        guard let number = value.intValue, range.contains(number) else {
            throw ToolFailure.arguments("`\(name)` must be a whole number from \(range.lowerBound) to \(range.upperBound)", tool: tool)
        }
        return number
    }

    /// An array of non-empty strings; a single string counts as an array of one.
    func strings(_ name: String) throws -> [String]? {
        guard let value = present(name) else { return nil }
        if let one = value.stringValue, !one.isEmpty { return [one] }
        guard let array = value.arrayValue else {
            throw ToolFailure.arguments("`\(name)` must be an array of strings", tool: tool)
        }
        return try array.map {
            guard let text = $0.stringValue, !text.isEmpty else {
                throw ToolFailure.arguments("`\(name)` must be an array of non-empty strings", tool: tool)
            }
            return text
        }
    }

    private func format(_ number: Double) -> String {
        number.rounded() == number ? String(Int64(number)) : String(number)
    }
}
