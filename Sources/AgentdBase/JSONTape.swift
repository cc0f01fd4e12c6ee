/// A parsed JSON document as a flat array of tokens in document order, each value
/// followed by its children, so a whole request is parsed without a single
/// allocation per value (the token array keeps its capacity across `parse` calls).
///
/// Layout: an object's token is followed, for each member, by the key's string token
/// and then the value's token(s); an array's token is followed by its elements' tokens.
/// `next` lets a reader hop over a whole subtree in O(1).
package struct JSONTape {
    package struct Token {
        package var kind: JSONKind
        /// Byte offset in the source. Strings: first byte inside the quotes.
        /// Everything else: first byte of the value.
        package var start: Int32
        /// One past the last byte. Strings: offset of the closing quote.
        /// Objects/arrays: one past the closing bracket. Numbers/literals: one past the last character.
        package var end: Int32
        /// Index of the token that follows this value's whole subtree.
        package var next: Int32
        /// Objects: members. Arrays: elements. Strings: 1 if the string contains backslash
        /// escapes, else 0. Bool: 1 for true, 0 for false. Numbers: 1 if there is a
        /// fraction or exponent, 0 for plain integers. Null: 0.
        package var count: Int32
    }

    /// Deepest allowed nesting of objects and arrays (a document of 128 nested
    /// containers parses, 129 does not). The parser is iterative, so this limit is
    /// about refusing abuse, not about the stack.
    package static let maxDepth = 128

    package var tokens: [Token] = []

    /// Validates the whole input as exactly one JSON value (RFC 8259; whitespace around
    /// it allowed) and fills `tokens`, reusing their capacity.
    ///
    /// Also checked: UTF-8 validity of the entire input (overlongs, UTF-8-encoded
    /// surrogates and code points above U+10FFFF are refused), `\u` escapes (an unpaired
    /// surrogate is refused, so every string decodes to valid Unicode), and nesting
    /// depth (`maxDepth`). Inputs of 2 GiB or more are refused (offsets are Int32).
    /// After a throw, `tokens` is empty.
    package mutating func parse(_ input: UnsafeRawBufferPointer) throws(JSONError) {
        tokens.removeAll(keepingCapacity: true)
        guard let base = input.baseAddress, input.count > 0 else {
            throw JSONError(message: "empty input")
        }
        guard input.count < Int(Int32.max) else {
            throw JSONError(message: "input too large")
        }
        // Move the array into the parser (and back) rather than copying it, so appends
        // stay on a uniquely referenced buffer.
        var parser = JSONParser(base: base, length: input.count)
        swap(&parser.tokens, &tokens)
        do {
            try parser.parseDocument()
            swap(&parser.tokens, &tokens)
        } catch {
            swap(&parser.tokens, &tokens)
            tokens.removeAll(keepingCapacity: true)
            throw error
        }
    }

    package init() {}
}
