import AgentdClient
import Foundation
import MCP

/// The MCP SDK speaks `Value` (Codable, unordered objects); agentd's client speaks `JSONValue`
/// (ordered objects). Tool arguments come in as `Value` and go to the daemon as `JSONValue`;
/// results go the other way.
// Inside this extension `Value` would name the dictionary-literal element type: say MCP.Value.
extension JSONValue {
    init(_ value: MCP.Value) {
        switch value {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(Int64(i))
        case .double(let d):
            // A whole number that came through as a double is an integer to the daemon.
            if d.rounded() == d, abs(d) < 9.0e15 { self = .int(Int64(d)) } else { self = .double(d) }
        case .string(let s): self = .string(s)
        case .data(let mimeType, let data):
            self = .string("data:\(mimeType ?? "application/octet-stream");base64,\(data.base64EncodedString())")
        case .array(let elements): self = .array(elements.map(JSONValue.init))
        case .object(let members):
            // Sorted, so what reaches the daemon does not depend on a dictionary's order.
            self = .object(JSONObject(members.sorted { $0.key < $1.key }.map { ($0.key, JSONValue($0.value)) }))
        }
    }

    var mcpValue: MCP.Value {
        switch self {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(Int(i))
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        case .array(let elements): return .array(elements.map(\.mcpValue))
        case .object(let object):
            var members: [String: MCP.Value] = [:]
            for (key, value) in object { members[key] = value.mcpValue }
            return .object(members)
        }
    }
}
