/// A refused request, as it goes on the wire: JSON-RPC code, the original's message, and the
/// stable reason of Part B in `error.data.reason`.
struct RequestError: Error {
    enum Code: Int64 {
        case parseError = -32700
        case unknownMethod = -32601
        case invalidParams = -32602
        case stateRefused = -32000
        case requestTooLarge = -32001
    }

    var code: Code
    var reason: String
    var message: String

    static func parse(_ detail: String) -> Self {
        .init(code: .parseError, reason: "PARSE_ERROR", message: "parse error: \(detail)")
    }
    static func invalidRequest(_ detail: String) -> Self {
        .init(code: .parseError, reason: "INVALID_REQUEST", message: "parse error: \(detail)")
    }
    static func unknownMethod(_ name: String) -> Self {
        .init(code: .unknownMethod, reason: "UNKNOWN_METHOD", message: "unknown method: \(name)")
    }
    static func invalidParams(_ detail: String) -> Self {
        .init(code: .invalidParams, reason: "INVALID_PARAMS", message: "invalid params: \(detail)")
    }
    static let tooLarge = RequestError(code: .requestTooLarge, reason: "REQUEST_TOO_LARGE",
                                       message: "request exceeds \(maxRequestBytes) bytes")

    init(code: Code, reason: String, message: String) {
        self.code = code
        self.reason = reason
        self.message = message
    }

    init(_ refusal: CoordinatorError) {
        self.init(code: refusal.reason == .invalidParams ? .invalidParams : .stateRefused,
                  reason: refusal.reason.rawValue, message: refusal.message)
    }
}

/// The longest request line, counting its "\n" (the original's limit).
let maxRequestBytes = 1_048_576
