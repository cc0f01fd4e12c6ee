/// Read access to one parsed document: values are addressed by token index
/// (`root` is 0) and read lazily from the source bytes.
///
/// Valid only while `input` is alive and unchanged. Drop the document before the
/// tape is parsed again: while a document holds the token array, the next `parse`
/// would have to copy it instead of reusing its capacity.
package struct JSONDocument {
    package let tape: JSONTape
    package let input: UnsafeRawBufferPointer

    package var root: Int { 0 }

    @inline(__always)
    package func token(_ index: Int) -> JSONTape.Token { tape.tokens[index] }

    package func kind(_ index: Int) -> JSONKind { tape.tokens[index].kind }

    /// Members of an object or elements of an array; 0 for any other kind.
    package func count(_ index: Int) -> Int {
        let t = tape.tokens[index]
        return t.kind == .object || t.kind == .array ? Int(t.count) : 0
    }

    /// Index of the value of member `key` in the object at `object`, or nil if there is
    /// no such member or `object` is not an object. With duplicate keys, the FIRST
    /// occurrence wins. Keys without escapes (the usual case) are compared as raw bytes.
    package func member(_ object: Int, _ key: StaticString) -> Int? {
        key.withUTF8Buffer { member(object, bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Same as the StaticString form, for keys only known at run time. (Labelled so
    /// that string literals keep resolving to the StaticString form.)
    package func member(_ object: Int, named key: String) -> Int? {
        var key = key
        return key.withUTF8 { member(object, bytes: UnsafeRawBufferPointer($0)) }
    }

    package func member(_ object: Int, bytes key: UnsafeRawBufferPointer) -> Int? {
        tape.tokens.withUnsafeBufferPointer { tokens in
            guard tokens[object].kind == .object else { return nil }
            var keyIndex = object + 1
            for _ in 0 ..< tokens[object].count {
                // Every request reads each of its method's params this way, most of them absent:
                // a key without escapes whose length differs is ruled out without a call.
                let t = tokens[keyIndex]
                if t.count == 0 {
                    if JSONBytes.equal(input.baseAddress! + Int(t.start), count: Int(t.end - t.start), key) {
                        return keyIndex + 1
                    }
                } else if stringEquals(keyIndex, bytes: key) {
                    return keyIndex + 1
                }
                keyIndex = Int(tokens[keyIndex + 1].next)
            }
            return nil
        }
    }

    /// (key, value) index pairs of an object, in document order; empty if not an object.
    package func members(_ object: Int) -> JSONMemberSequence {
        let t = tape.tokens[object]
        return JSONMemberSequence(tokens: tape.tokens, first: object + 1,
                                  count: t.kind == .object ? Int(t.count) : 0)
    }

    /// Element indices of an array, in order; empty if not an array.
    package func elements(_ array: Int) -> JSONElementSequence {
        let t = tape.tokens[array]
        return JSONElementSequence(tokens: tape.tokens, first: array + 1,
                                   count: t.kind == .array ? Int(t.count) : 0)
    }

    /// Integer value if the token is a number written as an integer (no fraction or
    /// exponent: "1.0" and "1e3" give nil) that fits Int64; nil for any other kind.
    package func int64(_ index: Int) -> Int64? {
        let t = tape.tokens[index]
        guard t.kind == .number, t.count == 0 else { return nil }
        var i = Int(t.start)
        let end = Int(t.end)
        let negative = input[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        // Accumulate the magnitude unsigned so Int64.min's magnitude (2^63) fits.
        var magnitude: UInt64 = 0
        while i < end {
            let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(input[i] &- UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            magnitude = sum
            i += 1
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return Int64(bitPattern: 0 &- magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }

    /// Any number as a Double (nearest representable; huge exponents give ±infinity).
    /// Allocates a temporary String: meant for rare fields, not the hot path.
    package func double(_ index: Int) -> Double? {
        guard kind(index) == .number else { return nil }
        return Double(String(decoding: raw(index), as: UTF8.self))
    }

    /// true/false for a bool token, nil for any other kind.
    package func bool(_ index: Int) -> Bool? {
        let t = tape.tokens[index]
        return t.kind == .bool ? t.count != 0 : nil
    }

    package func isNull(_ index: Int) -> Bool { kind(index) == .null }

    /// The raw source bytes of a value; for strings including the quotes.
    package func raw(_ index: Int) -> UnsafeRawBufferPointer {
        let t = tape.tokens[index]
        let quote = t.kind == .string ? 1 : 0
        return UnsafeRawBufferPointer(rebasing: input[Int(t.start) - quote ..< Int(t.end) + quote])
    }

    /// The bytes between a string's quotes, escapes NOT resolved.
    package func rawStringContents(_ index: Int) -> UnsafeRawBufferPointer {
        let t = tape.tokens[index]
        precondition(t.kind == .string, "rawStringContents of a non-string")
        return UnsafeRawBufferPointer(rebasing: input[Int(t.start) ..< Int(t.end)])
    }

    /// True if the string at `index` contains backslash escapes.
    package func stringHasEscapes(_ index: Int) -> Bool {
        tape.tokens[index].count != 0
    }

    package init(tape: JSONTape, input: UnsafeRawBufferPointer) {
        self.tape = tape
        self.input = input
    }
}
