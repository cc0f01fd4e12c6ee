import AgentdBase
/// A node as a client defines it in RegisterTask's `initial_nodes` (or AddNodes).
package struct NodeDefinition {
    package var id: UUID128?
    package var dependencies: [UUID128] = []
    /// Compact JSON; `{}` when the client gave none.
    package var payloadSchema: [UInt8] = JSONPayload.emptyObject
    /// 0 = unlimited.
    package var maxAttempts: Int32 = 0
    /// Unique within its task; nil when the client gave none.
    package var name: String?

    /// The longest node name, in bytes of UTF-8.
    package static let maxNameBytes = 200

    package init(id: UUID128? = nil, dependencies: [UUID128] = [], payloadSchema: [UInt8] = JSONPayload.emptyObject,
                 maxAttempts: Int32 = 0, name: String? = nil) {
        self.id = id
        self.dependencies = dependencies
        self.payloadSchema = payloadSchema
        self.maxAttempts = maxAttempts
        self.name = name
    }
}
