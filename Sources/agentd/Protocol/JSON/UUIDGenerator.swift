/// Random version 4 UUIDs from xoshiro256** (fast, statistically strong, NOT
/// cryptographic: ids are unique, not secret), seeded once from the system.
struct UUIDGenerator {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// Seeded from the operating system (getrandom on Linux).
    init() {
        var system = SystemRandomNumberGenerator()
        self.init(state: system.next(), system.next(), system.next(), system.next())
    }

    /// Deterministic, for tests: the seed is spread over the 256-bit state with
    /// SplitMix64, as the xoshiro authors recommend.
    init(seed: UInt64) {
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

    mutating func next() -> UUID128 {
        let hi = nextUInt64()
        let lo = nextUInt64()
        // Version 4 in the high nibble of byte 6; RFC 4122 variant (binary 10) in the
        // top bits of byte 8.
        return UUID128(hi: (hi & ~0xF000) | 0x4000,
                       lo: (lo & ~(0xC000 << 48)) | (0x8000 << 48))
    }

    mutating func nextUInt64() -> UInt64 {
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
