import AgentdBase
import AgentdCore
/// Reads `initial_nodes` (RegisterTask) or `nodes` (AddNodes): an array of
/// `{id?, dependencies = [], payload_schema = {}, max_attempts?, name?}`.
package enum NodeDefinitionDecoder {
    package static func decode(_ params: Params, _ param: Param) throws -> [NodeDefinition] {
        guard let array = try params.nodeDefinitionArray(param) else { return [] }
        let field = param.name
        let document = params.document
        var definitions: [NodeDefinition] = []
        for element in document.elements(array) {
            guard document.kind(element) == .object else {
                throw RequestError.invalidParams("invalid type for field `\(field)`: each node must be an object, found \(Params.describe(document.kind(element)))")
            }
            var definition = NodeDefinition()
            if let id = document.presentMember(element, "id") {
                definition.id = try Params.uuid(document, id, field: "id")
            }
            if let dependencies = document.presentMember(element, "dependencies") {
                guard document.kind(dependencies) == .array else {
                    throw RequestError.invalidParams("invalid type for field `dependencies`: expected an array, found \(Params.describe(document.kind(dependencies)))")
                }
                for dependency in document.elements(dependencies) {
                    definition.dependencies.append(try Params.uuid(document, dependency, field: "dependencies"))
                }
            }
            // An explicit null is kept, as the original stores it; only absence means {}.
            if let schema = document.member(element, "payload_schema") {
                var compact: [UInt8] = []
                document.appendCompact(schema, to: &compact)
                definition.payloadSchema = JSONPayload.shared(compact)
            }
            if let maxAttempts = document.presentMember(element, "max_attempts") {
                guard document.kind(maxAttempts) == .number, let value = document.int64(maxAttempts),
                      value >= 1, value <= Int64(Int32.max) else {
                    throw RequestError.invalidParams("field `max_attempts` must be a positive integer")
                }
                definition.maxAttempts = Int32(value)
            }
            if let name = document.presentMember(element, "name") {
                guard document.kind(name) == .string else {
                    throw RequestError.invalidParams("invalid type for field `name`: expected a string, found \(Params.describe(document.kind(name)))")
                }
                let text = document.string(name)
                guard text.utf8.count <= NodeDefinition.maxNameBytes else {
                    throw RequestError.invalidParams("field `name` must be at most \(NodeDefinition.maxNameBytes) bytes of UTF-8")
                }
                definition.name = text
            }
            definitions.append(definition)
        }
        return definitions
    }

}
