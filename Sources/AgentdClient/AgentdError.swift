/// The daemon answered a request with an error. `reason` is the stable `error.data.reason`
/// (TASK_NOT_FOUND, LEASE_MISMATCH, ...) to branch on; `message` is for people.
public struct AgentdError: Error, Equatable, CustomStringConvertible {
    public let code: Int64
    public let message: String
    public let reason: String?

    public init(code: Int64, message: String, reason: String?) {
        self.code = code
        self.message = message
        self.reason = reason
    }

    public var description: String { reason.map { "\(message) (\($0))" } ?? message }
}

/// The connection itself failed: nothing was answered.
public enum ConnectionError: Error, Equatable, CustomStringConvertible {
    /// Nothing accepts connections at the endpoint (no daemon, a stale socket, no permission).
    case unreachable(endpoint: String, reason: String)
    /// The daemon closed the connection or it broke before the answer came.
    case closed(String)
    /// The answer was not the JSON line the protocol promises.
    case malformedAnswer(String)
    /// No answer within the time the caller allowed.
    case timedOut(seconds: Double)

    public var description: String {
        switch self {
        case let .unreachable(endpoint, reason): return "cannot reach agentd at \(endpoint): \(reason)"
        case let .closed(why): return "connection to agentd lost: \(why)"
        case let .malformedAnswer(why): return "agentd sent an answer that is not protocol JSON: \(why)"
        case let .timedOut(seconds): return "no answer from agentd within \(seconds) s"
        }
    }
}
