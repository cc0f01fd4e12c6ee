import AgentdBase
/// Payloads are compact JSON bytes. The most common one, `{}` (every payload_schema, context and
/// metadata a client leaves out), is one shared buffer: a million nodes must not each carry a
/// heap block for two bytes.
package enum JSONPayload {
    package static let emptyObject: [UInt8] = Array("{}".utf8)

    /// `bytes`, or the shared `{}` when that is what it holds.
    package static func shared(_ bytes: [UInt8]) -> [UInt8] {
        bytes.count == 2 && bytes == emptyObject ? emptyObject : bytes
    }
}
