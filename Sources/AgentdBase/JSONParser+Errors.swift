/// Error construction, kept out of line so the hot paths stay small.
extension JSONParser {
    /// An error for the byte at `pos`, worded for what went wrong there: running out of
    /// input, or an invalid UTF-8 byte, or simply not `expected`.
    @inline(never)
    package func failure(_ expected: String) -> JSONError {
        if pos >= length {
            return JSONError(message: "unexpected end of input at column \(pos + 1)")
        }
        if byte(pos) >= 0x80 && utf8SequenceLength(at: pos) == 0 {
            return JSONError(message: "invalid UTF-8 at byte \(pos)")
        }
        return JSONError(message: "\(expected) at column \(pos + 1)")
    }
}
