/// A node as a client defines it in RegisterTask's `initial_nodes` (or AddNodes).
struct NodeDefinition {
    var id: UUID128?
    var dependencies: [UUID128] = []
    /// Compact JSON; `{}` when the client gave none.
    var payloadSchema: [UInt8] = JSONPayload.emptyObject
    /// 0 = unlimited.
    var maxAttempts: Int32 = 0
}
