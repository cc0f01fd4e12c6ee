import AgentdBase
import AgentdCore
/// A refused request, as it goes on the wire: JSON-RPC code, the original's message, and the
/// stable reason in `error.data.reason`.
package struct RequestError: Error {
    package enum Code: Int64 {
        case parseError = -32700
        case unknownMethod = -32601
        case invalidParams = -32602
        case stateRefused = -32000
        case requestTooLarge = -32001
    }

    package var code: Code
    package var reason: String
    package var message: String

    package static func parse(_ detail: String) -> Self {
        .init(code: .parseError, reason: "PARSE_ERROR", message: "parse error: \(detail)")
    }
    package static func invalidRequest(_ detail: String) -> Self {
        .init(code: .parseError, reason: "INVALID_REQUEST", message: "parse error: \(detail)")
    }
    package static func unknownMethod(_ name: String) -> Self {
        .init(code: .unknownMethod, reason: "UNKNOWN_METHOD", message: "unknown method: \(name)")
    }
    package static func invalidParams(_ detail: String) -> Self {
        .init(code: .invalidParams, reason: "INVALID_PARAMS", message: "invalid params: \(detail)")
    }
    package static let tooLarge = RequestError(code: .requestTooLarge, reason: "REQUEST_TOO_LARGE",
                                       message: "request exceeds \(maxRequestBytes) bytes")

    package init(code: Code, reason: String, message: String) {
        self.code = code
        self.reason = reason
        self.message = message
    }

    package init(_ refusal: CoordinatorError) {
        self.init(code: refusal.reason == .invalidParams ? .invalidParams : .stateRefused,
                  reason: refusal.reason.rawValue, message: refusal.message)
    }
}

/// The longest request line, counting its "\n" (the original's limit).
package let maxRequestBytes = 1_048_576
