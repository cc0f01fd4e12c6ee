/// A resource key with its String hash taken once, when the key enters from a request: the
/// lock table, the change set and the commit then find it without running SipHash again.
///
/// `hash` is Swift's own seeded String hash, so colliding keys are as hard to choose as with
/// String keys; the tables only spread it with their per-table seed (`_rawHashValue(seed:)`),
/// which keeps Dictionary and Set off Hasher entirely.
package struct LockKey: Hashable, CustomStringConvertible {
    package let text: String
    package let hash: Int

    package init(_ text: String) {
        self.text = text
        self.hash = text.hashValue
    }

    package var description: String { text }

    package static func == (lhs: LockKey, rhs: LockKey) -> Bool {
        lhs.hash == rhs.hash && lhs.text == rhs.text
    }

    package func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    /// What Dictionary and Set call instead of hashing through Hasher. The multiply and the
    /// shift bring every bit of `hash ^ seed` into the low bits that pick the bucket, so tables
    /// with different seeds do not order the keys alike.
    package func _rawHashValue(seed: Int) -> Int {
        var mixed = UInt64(UInt(bitPattern: hash ^ seed)) &* 0x9E37_79B9_7F4A_7C15
        mixed ^= mixed >> 32
        return Int(truncatingIfNeeded: mixed)
    }
}
