import AgentdBase
import AgentdCore
/// Typed access to a request's `params` object, with the original's error texts:
/// a missing required field or a value of the wrong type is -32602 naming the field.
/// A field that is present but `null` counts as absent.
package struct Params {
    package let document: JSONDocument
    /// The params object, or nil when the request had none (or `null`).
    package let object: Int?
    /// The method being decoded: in debug builds every read is checked against its table.
    package var method: Method?

    /// `lenient`: params that are not an object are read as no params instead of refused
    /// (the methods whose params the original ignores).
    package init(document: JSONDocument, object: Int?, lenient: Bool = false) throws {
        self.document = document
        if let object, document.kind(object) != .null {
            if lenient && document.kind(object) != .object {
                self.object = nil
                return
            }
            guard document.kind(object) == .object else {
                throw RequestError.invalidParams("params must be an object")
            }
            self.object = object
        } else {
            self.object = nil
        }
    }

    /// The value of `field`, or nil when absent or null.
    package func value(_ field: StaticString) -> Int? {
        object.flatMap { document.presentMember($0, field) }
    }

    /// Debug builds check that the handler reads `param` as its method's table declares it,
    /// so the table that DescribeInterface and the docs are written from cannot drift.
    @inline(__always)
    private func declared(_ param: Param, _ kinds: [Param.Kind], required: Bool) {
        assert(kinds.contains(param.kind) && param.required == required,
               "\(param.name) is read as \(kinds), required \(required), but declared \(param.kind), required \(param.required)")
        assert(method.map { $0.params.contains { $0.name.description == param.name.description } } ?? true,
               "\(param.name) is not among the declared params of \(method.map { "\($0)" } ?? "")")
    }

    private func expected(_ field: StaticString, _ what: String, at index: Int) -> RequestError {
        .invalidParams("invalid type for field `\(field)`: expected \(what), found \(Params.describe(document.kind(index)))")
    }

    package static func describe(_ kind: JSONKind) -> String {
        switch kind {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }

    package func missing(_ field: StaticString) -> RequestError {
        .invalidParams("missing field `\(field)`")
    }

    private func string(_ field: StaticString) throws -> String? {
        guard let index = value(field) else { return nil }
        guard document.kind(index) == .string else { throw expected(field, "a string", at: index) }
        return document.string(index)
    }

    private func requiredString(_ field: StaticString) throws -> String {
        guard let value = try string(field) else { throw missing(field) }
        return value
    }

    private func uuid(_ field: StaticString) throws -> UUID128? {
        guard let index = value(field) else { return nil }
        return try Params.uuid(document, index, field: field)
    }

    package static func uuid(_ document: JSONDocument, _ index: Int, field: StaticString) throws -> UUID128 {
        guard document.kind(index) == .string else {
            throw RequestError.invalidParams("invalid type for field `\(field)`: expected a UUID string, found \(describe(document.kind(index)))")
        }
        // A UUID never needs escapes; one written with them is decoded first.
        let parsed = document.stringHasEscapes(index)
            ? UUID128(document.string(index)) : UUID128(parsing: document.rawStringContents(index))
        guard let id = parsed else {
            throw RequestError.invalidParams("field `\(field)`: invalid UUID \(document.string(index))")
        }
        return id
    }

    private func requiredUUID(_ field: StaticString) throws -> UUID128 {
        guard let value = try uuid(field) else { throw missing(field) }
        return value
    }

    /// A whole number of seconds (or milliseconds) that must not be negative.
    private func nonNegativeInt(_ field: StaticString) throws -> Int64? {
        guard let index = value(field) else { return nil }
        guard document.kind(index) == .number, let value = document.int64(index) else {
            throw expected(field, "an integer", at: index)
        }
        guard value >= 0 else {
            throw RequestError.invalidParams("field `\(field)` must not be negative")
        }
        return value
    }

    /// The longest lease, lock TTL or wait anyone may ask for (ten years): longer is refused
    /// with a clear error rather than clamped by the Coordinator without a word.
    package static let maxDurationSecs: Int64 = Coordinator.maxDurationMs / 1000

    /// A duration in whole seconds (ttl_secs, lease_ttl_secs).
    private func seconds(_ field: StaticString) throws -> Int64? {
        try bounded(field, max: Params.maxDurationSecs, unit: "seconds")
    }

    /// A duration in milliseconds (wait_ms).
    private func milliseconds(_ field: StaticString) throws -> Int64? {
        try bounded(field, max: Params.maxDurationSecs * 1000, unit: "milliseconds")
    }

    private func bounded(_ field: StaticString, max: Int64, unit: String) throws -> Int64? {
        guard let value = try nonNegativeInt(field) else { return nil }
        guard value <= max else {
            throw RequestError.invalidParams("field `\(field)` must be at most \(max) \(unit) (ten years)")
        }
        return value
    }

    /// A page size: 1...1000, `fallback` when absent.
    private func limit(_ field: StaticString, default fallback: Int) throws -> Int {
        guard let value = try nonNegativeInt(field) else { return fallback }
        guard (1...1000).contains(value) else {
            throw RequestError.invalidParams("field `\(field)` must be between 1 and 1000")
        }
        return Int(value)
    }

    private func bool(_ field: StaticString) throws -> Bool? {
        guard let index = value(field) else { return nil }
        guard document.kind(index) == .bool else { throw expected(field, "a boolean", at: index) }
        return document.raw(index).first == UInt8(ascii: "t")
    }

    /// Any JSON value (null included: a payload may be null), kept as compact bytes.
    private func payload(_ field: StaticString) -> [UInt8]? {
        guard let object, let index = document.member(object, field) else { return nil }
        var out: [UInt8] = []
        document.appendCompact(index, to: &out)
        return out
    }

    private func array(_ field: StaticString) throws -> Int? {
        guard let index = value(field) else { return nil }
        guard document.kind(index) == .array else { throw expected(field, "an array", at: index) }
        return index
    }

    // MARK: - Reads through the method's table

    package func string(_ param: Param) throws -> String? {
        declared(param, [.string], required: false)
        return try string(param.name)
    }

    package func requiredString(_ param: Param) throws -> String {
        declared(param, [.string], required: true)
        return try requiredString(param.name)
    }

    package func uuid(_ param: Param) throws -> UUID128? {
        declared(param, [.uuid], required: false)
        return try uuid(param.name)
    }

    package func requiredUUID(_ param: Param) throws -> UUID128 {
        declared(param, [.uuid], required: true)
        return try requiredUUID(param.name)
    }

    package func nonNegativeInt(_ param: Param) throws -> Int64? {
        declared(param, [.integer], required: false)
        return try nonNegativeInt(param.name)
    }

    package func seconds(_ param: Param) throws -> Int64? {
        declared(param, [.seconds], required: false)
        return try seconds(param.name)
    }

    package func milliseconds(_ param: Param) throws -> Int64? {
        declared(param, [.milliseconds], required: false)
        return try milliseconds(param.name)
    }

    /// A page size, the declared default when absent.
    package func pageSize(_ param: Param) throws -> Int {
        declared(param, [.pageSize], required: false)
        return try limit(param.name, default: Int(param.defaultValue ?? "") ?? 100)
    }

    package func bool(_ param: Param) throws -> Bool? {
        declared(param, [.boolean], required: false)
        return try bool(param.name)
    }

    /// Any JSON value (null included), by its name or else its aliases, as compact bytes.
    package func payload(_ param: Param) -> [UInt8]? {
        declared(param, [.any], required: false)
        return payloadByAnyName(param)
    }

    package func requiredPayload(_ param: Param) throws -> [UInt8] {
        declared(param, [.any], required: true)
        guard let payload = payloadByAnyName(param) else { throw missing(param.name) }
        return payload
    }

    private func payloadByAnyName(_ param: Param) -> [UInt8]? {
        if let payload = payload(param.name) { return payload }
        for alias in param.aliases {
            if let payload = payload(alias) { return payload }
        }
        return nil
    }

    /// The array of node definitions; nil when absent (a required one throws).
    package func nodeDefinitionArray(_ param: Param) throws -> Int? {
        declared(param, [.nodeDefinitions], required: param.required)
        guard let index = try array(param.name) else {
            if param.required { throw missing(param.name) }
            return nil
        }
        return index
    }
}


extension JSONDocument {
    /// A member that is present and not null: how every optional param is read.
    package func presentMember(_ object: Int, _ key: StaticString) -> Int? {
        guard let index = member(object, key), kind(index) != .null else { return nil }
        return index
    }
}
