/// Reading string values. Strings without escapes are used straight from the source
/// bytes; only escaped ones go through `JSONStringDecoder`.
extension JSONDocument {
    /// The decoded string (escapes resolved). Precondition: the token is a string.
    package func string(_ index: Int) -> String {
        let contents = rawStringContents(index)
        if !stringHasEscapes(index) {
            return String(decoding: contents, as: UTF8.self)
        }
        // Decoding never makes a string longer than its escaped source.
        return String(unsafeUninitializedCapacity: contents.count) { buffer in
            JSONStringDecoder.decode(contents, into: buffer.baseAddress!)
        }
    }

    /// The decoded string, or nil if the token is not a string.
    package func stringValue(_ index: Int) -> String? {
        kind(index) == .string ? string(index) : nil
    }

    /// The string at `index` parsed as a UUID (any form `UUID128(parsing:)` accepts),
    /// or nil if it is not a string or not a UUID. Escapes are resolved first.
    package func uuid(_ index: Int) -> UUID128? {
        guard kind(index) == .string else { return nil }
        let contents = rawStringContents(index)
        if !stringHasEscapes(index) { return UUID128(parsing: contents) }
        return withDecodedBytes(contents) { UUID128(parsing: $0) }
    }

    /// Appends the decoded UTF-8 bytes (escapes resolved). Precondition: a string token.
    package func stringBytes(_ index: Int, into out: inout [UInt8]) {
        let contents = rawStringContents(index)
        if !stringHasEscapes(index) {
            out.appendRawBytes(contents)
            return
        }
        withDecodedBytes(contents) { out.appendRawBytes($0) }
    }

    /// True if the token is a string whose decoded value equals `literal`.
    package func stringEquals(_ index: Int, _ literal: StaticString) -> Bool {
        literal.withUTF8Buffer { stringEquals(index, bytes: UnsafeRawBufferPointer($0)) }
    }

    /// For values only known at run time. (Labelled so that string literals keep
    /// resolving to the StaticString form.)
    package func stringEquals(_ index: Int, string other: String) -> Bool {
        var other = other
        return other.withUTF8 { stringEquals(index, bytes: UnsafeRawBufferPointer($0)) }
    }

    /// True if the token is a string whose decoded UTF-8 equals `bytes`.
    package func stringEquals(_ index: Int, bytes: UnsafeRawBufferPointer) -> Bool {
        let t = tape.tokens[index]
        guard t.kind == .string else { return false }
        let contents = UnsafeRawBufferPointer(rebasing: input[Int(t.start) ..< Int(t.end)])
        if t.count == 0 {
            return JSONBytes.equal(input.baseAddress! + Int(t.start), count: contents.count, bytes)
        }
        // Decoding only ever shortens a string, so a shorter source cannot match.
        guard contents.count >= bytes.count else { return false }
        return withDecodedBytes(contents) { decoded in
            JSONBytes.equal(decoded.baseAddress!, count: decoded.count, bytes)
        }
    }

    private func withDecodedBytes<R>(_ contents: UnsafeRawBufferPointer,
                                     _ body: (UnsafeRawBufferPointer) -> R) -> R {
        // Stack memory for ordinary sizes; the standard library moves big ones to the heap.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: contents.count) { buffer in
            let n = JSONStringDecoder.decode(contents, into: buffer.baseAddress!)
            return body(UnsafeRawBufferPointer(start: buffer.baseAddress, count: n))
        }
    }
}
