/// Numbers and the literals true/false/null. Numbers are only validated here;
/// their value is read on demand by `JSONDocument.int64`.
extension JSONParser {
    /// RFC 8259 grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    /// Leaves `pos` after the number; what follows is judged by the caller.
    package mutating func parseNumber() throws(JSONError) {
        let start = pos
        var i = pos
        var isInteger = true
        if byte(i) == UInt8(ascii: "-") { i += 1 }
        let first = byte(i)
        if first == UInt8(ascii: "0") {
            i += 1
            // "01" would otherwise fail later as "trailing characters"; say what is wrong.
            if isDigit(byte(i)) { throw JSONError(message: "invalid number (leading zero) at column \(start + 1)") }
        } else if isDigit(first) {
            i = skipDigits(from: i + 1)
        } else {
            throw JSONError(message: "invalid number at column \(i + 1)")
        }
        if byte(i) == UInt8(ascii: ".") {
            isInteger = false
            guard isDigit(byte(i + 1)) else {
                throw JSONError(message: "invalid number (expected digit after '.') at column \(i + 2)")
            }
            i = skipDigits(from: i + 2)
        }
        if byte(i) | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            i += 1
            if byte(i) == UInt8(ascii: "+") || byte(i) == UInt8(ascii: "-") { i += 1 }
            guard isDigit(byte(i)) else {
                throw JSONError(message: "invalid number (expected exponent digit) at column \(i + 1)")
            }
            i = skipDigits(from: i + 1)
        }
        tokens.append(JSONTape.Token(
            kind: .number, start: offset(start), end: offset(i),
            next: offset(tokens.count + 1), count: isInteger ? 0 : 1))
        pos = i
    }

    /// `pos` is at 't', 'f' or 'n'.
    package mutating func parseLiteral() throws(JSONError) {
        let kind: JSONKind
        let length: Int
        var flag: Int32 = 0
        switch byte(pos) {
        case UInt8(ascii: "t") where matches("true"):
            kind = .bool; length = 4; flag = 1
        case UInt8(ascii: "f") where matches("false"):
            kind = .bool; length = 5
        case UInt8(ascii: "n") where matches("null"):
            kind = .null; length = 4
        default:
            throw failure("expected value")
        }
        tokens.append(JSONTape.Token(
            kind: kind, start: offset(pos), end: offset(pos + length),
            next: offset(tokens.count + 1), count: flag))
        pos += length
    }

    @inline(__always)
    private func matches(_ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard pos + n <= length else { return false }
        return JSONBytes.equal(base + pos, literal.utf8Start, count: n)
    }

    @inline(__always)
    private func skipDigits(from start: Int) -> Int {
        var i = start
        while isDigit(byte(i)) { i += 1 }
        return i
    }

    @inline(__always)
    private func isDigit(_ b: UInt8) -> Bool {
        b &- UInt8(ascii: "0") < 10
    }
}
