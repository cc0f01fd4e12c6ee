/// Why an input was refused by `JSONTape.parse`.
///
/// Messages name a position so a client can find its mistake in a one-line request:
/// "column N" is 1-based (as serde_json and editors count), "byte N" is the 0-based
/// offset used for encoding errors (where a column would be misleading mid-character).
package struct JSONError: Error, Equatable {
    package var message: String
}

/// The six JSON value kinds. UInt8-backed so a tape token stays small.
package enum JSONKind: UInt8 {
    case object, array, string, number, bool, null
}
