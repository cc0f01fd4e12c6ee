/// Random version 4 UUIDs from xoshiro256** (fast, statistically strong, NOT
/// cryptographic: ids are unique, not secret), seeded once from the system.
package struct UUIDGenerator {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64
    /// The millisecond and sequence of the last time-ordered id, so they keep rising.
    private var orderedMs: UInt64 = 0
    private var orderedSequence: UInt64 = 0

    /// Seeded from the operating system (getrandom on Linux).
    package init() {
        var system = SystemRandomNumberGenerator()
        self.init(state: system.next(), system.next(), system.next(), system.next())
    }

    /// Deterministic, for tests: the seed is spread over the 256-bit state with
    /// SplitMix64, as the xoshiro authors recommend.
    package init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        self.init(state: splitMix(), splitMix(), splitMix(), splitMix())
    }

    private init(state a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) {
        // The all-zero state would only ever produce zeros.
        (s0, s1, s2, s3) = (a | b | c | d) == 0 ? (1, 2, 3, 4) : (a, b, c, d)
    }

    package mutating func next() -> UUID128 {
        let hi = nextUInt64()
        let lo = nextUInt64()
        // Version 4 in the high nibble of byte 6; RFC 4122 variant (binary 10) in the
        // top bits of byte 8.
        return UUID128(hi: (hi & ~0xF000) | 0x4000,
                       lo: (lo & ~(0xC000 << 48)) | (0x8000 << 48))
    }

    /// A version 4 UUID whose first 48 bits are the creation time in Unix milliseconds, followed
    /// by the version, a 12-bit sequence within the millisecond and 62 random bits. Node, task and
    /// event ids are primary keys: ids that rise with time land at the end of the database's
    /// indexes instead of a random page each, which keeps a commit to a few pages. Lease ids stay
    /// fully random (`next()`).
    package mutating func nextOrdered(unixMs: Int64) -> UUID128 {
        let ms = UInt64(max(0, unixMs)) & 0xFFFF_FFFF_FFFF
        if ms > orderedMs {
            orderedMs = ms
            orderedSequence = 0
        } else {
            orderedSequence += 1
            if orderedSequence > 0xFFF {
                // Four thousand ids in one millisecond: borrow the next one.
                orderedMs += 1
                orderedSequence = 0
            }
        }
        let lo = nextUInt64()
        return UUID128(hi: (orderedMs << 16) | 0x4000 | orderedSequence,
                       lo: (lo & ~(0xC000 << 48)) | (0x8000 << 48))
    }

    package mutating func nextUInt64() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotateLeft(s3, 45)
        return result
    }

    @inline(__always)
    private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }
}
