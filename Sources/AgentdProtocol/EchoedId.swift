import AgentdBase
import AgentdCore
/// A request's `id`, echoed exactly in its answer. A scalar id is echoed from the read buffer
/// without a copy; an object or array id is kept compact. A null id is no id, as the original
/// reads it.
package enum EchoedId {
    case none
    /// Points into the request line: valid only while the request is being handled.
    case inLine(UnsafeRawBufferPointer)
    case owned([UInt8])

    package init(_ document: JSONDocument) {
        guard let index = document.presentMember(document.root, "id") else {
            self = .none
            return
        }
        switch document.kind(index) {
        case .object, .array:
            var compact: [UInt8] = []
            document.appendCompact(index, to: &compact)
            self = .owned(compact)
        default:
            self = .inLine(document.raw(index))
        }
    }

    package var isPresent: Bool {
        if case .none = self { return false }
        return true
    }

    package func append(to out: inout [UInt8]) {
        switch self {
        case .none: break
        case let .inLine(bytes): out.append(contentsOf: bytes)
        case let .owned(bytes): out.append(contentsOf: bytes)
        }
    }

    /// A copy that outlives the request line, for a request that waits.
    package func owned() -> EchoedId {
        if case let .inLine(bytes) = self { return .owned(Array(bytes)) }
        return self
    }
}
