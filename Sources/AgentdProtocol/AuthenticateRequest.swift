import AgentdBase

/// The first request on a network connection, `{"method":"Authenticate","params":{"token":...}}`,
/// decoded and answered as bytes. Which tokens exist and what a connection may do once it
/// presented one is the Server's business.
package enum AuthenticateRequest {
    package enum Decoded {
        /// A blank line: no answer.
        case blank
        case authenticate(id: EchoedId, token: [UInt8])
        /// Anything else, answered with this error and otherwise ignored.
        case refused(RequestError, id: EchoedId)
    }

    package static let notYet = RequestError(
        code: .stateRefused, reason: "UNAUTHENTICATED",
        message: "unauthenticated: the first request on a network connection must be Authenticate {token}")
    package static let wrongToken = RequestError(
        code: .stateRefused, reason: "UNAUTHENTICATED", message: "unauthenticated: unknown token")

    /// The id it returns points into `line`: use it before the line goes.
    package static func decode(_ line: UnsafeRawBufferPointer, tape: inout JSONTape) -> Decoded {
        let trimmed = RequestHandler.trimmed(line)
        guard !trimmed.isEmpty else { return .blank }
        do {
            try tape.parse(trimmed)
        } catch {
            return .refused(notYet, id: .none)
        }
        let document = JSONDocument(tape: tape, input: trimmed)
        guard document.kind(document.root) == .object else { return .refused(notYet, id: .none) }
        let id = EchoedId(document)
        guard let method = document.member(document.root, "method"), document.kind(method) == .string,
              document.stringEquals(method, "Authenticate") || document.stringEquals(method, "authenticate") else {
            return .refused(notYet, id: id)
        }
        guard let params = document.member(document.root, "params"), document.kind(params) == .object,
              let tokenIndex = document.member(params, "token"), document.kind(tokenIndex) == .string else {
            return .refused(.invalidParams("missing field `token` (a string)"), id: id)
        }
        var token: [UInt8] = []
        document.stringBytes(tokenIndex, into: &token)
        return .authenticate(id: id, token: token)
    }

    /// `{"id":...,"result":{"agent":NAME}}`.
    package static func appendAccepted(agent: String, id: EchoedId, to out: inout [UInt8]) {
        RequestHandler.appendResultOpening(id: id, to: &out)
        out.appendASCII("{\"agent\":")
        out.appendJSONString(agent)
        out.appendASCII("}}\n")
    }
}
