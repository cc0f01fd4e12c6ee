/// Writers for the values that answers, journal payloads and rows carry: quoted UUIDs, ISO
/// times, and JSON `null` for what is absent.
extension Array where Element == UInt8 {
    package mutating func appendQuotedUUID(_ id: UUID128) {
        append(UInt8(ascii: "\""))
        id.append(to: &self)
        append(UInt8(ascii: "\""))
    }

    package mutating func appendOptionalUUID(_ id: UUID128?) {
        if let id { appendQuotedUUID(id) } else { appendASCII("null") }
    }

    package mutating func appendOptionalInt(_ v: Int64?) {
        if let v { appendJSONInt(v) } else { appendASCII("null") }
    }

    package mutating func appendISOString(unixMs: Int64) {
        append(UInt8(ascii: "\""))
        ISOTime.append(unixMs: unixMs, to: &self)
        append(UInt8(ascii: "\""))
    }
}
