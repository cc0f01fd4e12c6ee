/// The structural half of the parser: walks objects and arrays with an explicit
/// parent chain instead of recursion, so hostile nesting can never overflow the stack.
///
/// While a container is open, its token's `next` field temporarily holds the index of
/// the enclosing open container (-1 at top level); closing it restores `next` to its
/// real meaning. That makes the tape its own stack and avoids a second array.
package struct JSONParser {
    package let base: UnsafeRawPointer
    package let length: Int
    package var pos = 0
    package var tokens: [JSONTape.Token] = []

    package init(base: UnsafeRawPointer, length: Int) {
        self.base = base
        self.length = length
    }

    /// The byte at `i`, or 0 past the end. 0 is never valid where a caller looks, so
    /// running off the end falls into the ordinary error paths without extra checks.
    @inline(__always)
    package func byte(_ i: Int) -> UInt8 {
        i < length ? base.load(fromByteOffset: i, as: UInt8.self) : 0
    }

    @inline(__always)
    package mutating func skipWhitespace() {
        while true {
            let b = byte(pos)
            // Bit n of the mask is set for n in {\t, \n, \r, space}.
            guard b <= 0x20, (UInt64(0x1_0000_2600) >> UInt64(b)) & 1 != 0 else { return }
            pos += 1
        }
    }

    package mutating func parseDocument() throws(JSONError) {
        // The innermost open container, kept in locals so that scalar values cost one
        // token append and nothing else. Its running member count is parked in its own
        // token's `count` while a child container is open.
        var container = -1
        var inObject = false
        var count: Int32 = 0
        var depth = 0
        skipWhitespace()

        parsingValues: while true {
            // A value starts at `pos` (whitespace already skipped).
            let b = byte(pos)
            switch b {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth > JSONTape.maxDepth { throw JSONError(message: "nesting too deep") }
                if container >= 0 { tokens[container].count = count }
                let isObject = b == UInt8(ascii: "{")
                let index = tokens.count
                tokens.append(JSONTape.Token(
                    kind: isObject ? .object : .array, start: offset(pos), end: 0,
                    next: offset(container), count: 0))
                container = index
                inObject = isObject
                count = 0
                pos &+= 1
                skipWhitespace()
                if byte(pos) != closingBracket(inObject) {
                    count = 1
                    if inObject { try parseKeyAndColon() }
                    continue parsingValues
                }
                closeContainer(&container, &inObject, &count, &depth)
            case UInt8(ascii: "\""):
                try parseString()
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                try parseNumber()
            case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                try parseLiteral()
            default:
                throw failure("expected value")
            }

            // A value just ended: continue the enclosing container, close it, or finish.
            while container >= 0 {
                skipWhitespace()
                let b = byte(pos)
                if b == UInt8(ascii: ",") {
                    pos &+= 1
                    count &+= 1
                    skipWhitespace()
                    if inObject { try parseKeyAndColon() }
                    continue parsingValues
                } else if b == closingBracket(inObject) {
                    closeContainer(&container, &inObject, &count, &depth)
                } else {
                    throw failure(inObject ? "expected ',' or '}'" : "expected ',' or ']'")
                }
            }
            break
        }

        skipWhitespace()
        if pos != length { throw failure("trailing characters") }
    }

    @inline(__always)
    private func closingBracket(_ inObject: Bool) -> UInt8 {
        inObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
    }

    /// `pos` is at the closing bracket of `container`: finish its token and make the
    /// enclosing container current again.
    @inline(__always)
    private mutating func closeContainer(_ container: inout Int, _ inObject: inout Bool,
                                         _ count: inout Int32, _ depth: inout Int) {
        pos &+= 1
        let open = tokens[container]
        let parent = Int(open.next)
        tokens[container] = JSONTape.Token(
            kind: open.kind, start: open.start, end: offset(pos),
            next: offset(tokens.count), count: count)
        container = parent
        depth -= 1
        if parent >= 0 {
            let enclosing = tokens[parent]
            inObject = enclosing.kind == .object
            count = enclosing.count
        }
    }

    /// An offset or index as stored in a token. `JSONTape.parse` refuses inputs whose
    /// offsets would not fit, and there are never more tokens than input bytes.
    @inline(__always)
    package func offset(_ i: Int) -> Int32 {
        Int32(truncatingIfNeeded: i)
    }

    /// Parses `"key"` `:` and the whitespace after, leaving `pos` at the member's value.
    @inline(__always)
    private mutating func parseKeyAndColon() throws(JSONError) {
        guard byte(pos) == UInt8(ascii: "\"") else { throw failure("expected string key") }
        try parseString()
        skipWhitespace()
        guard byte(pos) == UInt8(ascii: ":") else { throw failure("expected ':'") }
        pos &+= 1
        skipWhitespace()
    }
}
