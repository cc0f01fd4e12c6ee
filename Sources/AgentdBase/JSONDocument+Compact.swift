extension JSONDocument {
    /// Appends the value with insignificant whitespace removed and everything else
    /// byte-for-byte as in the source (string contents and escapes untouched), so a
    /// payload can be stored verbatim but compact.
    ///
    /// The tape already knows where every string is: string tokens are copied whole,
    /// and only the short gaps between them (brackets, commas, numbers, literals,
    /// whitespace) are scanned for whitespace to drop.
    package func appendCompact(_ index: Int, to out: inout [UInt8]) {
        let tokens = tape.tokens
        let value = tokens[index]
        let quote = value.kind == .string ? 1 : 0
        let first = Int(value.start) - quote
        let end = Int(value.end) + quote
        guard let source = input.baseAddress else { return }
        // The compact form is never longer than the source.
        out.appendWriting(maxCount: end - first) { dest in
            var n = 0
            var pos = first
            for i in index ..< Int(value.next) where tokens[i].kind == .string {
                let s = tokens[i]
                n += copySkippingWhitespace(source, pos ..< Int(s.start) - 1, to: dest + n)
                let quoted = Int(s.end) + 1 - (Int(s.start) - 1)
                UnsafeMutableRawPointer(dest + n).copyMemory(from: source + Int(s.start) - 1, byteCount: quoted)
                n += quoted
                pos = Int(s.end) + 1
            }
            return n + copySkippingWhitespace(source, pos ..< end, to: dest + n)
        }
    }

    /// Copies the bytes of `range` (never inside a string) minus whitespace; returns
    /// how many were written.
    @inline(__always)
    private func copySkippingWhitespace(_ source: UnsafeRawPointer, _ range: Range<Int>,
                                        to dest: UnsafeMutablePointer<UInt8>) -> Int {
        var n = 0
        for i in range {
            let b = source.load(fromByteOffset: i, as: UInt8.self)
            dest[n] = b
            // Always store, advance only past non-whitespace: no branch to mispredict.
            n += (b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09) ? 0 : 1
        }
        return n
    }
}
