/// xorshift64*: a per-worker generator that costs a few instructions and never allocates.
struct FastRandom {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// Uniform enough in 0..<bound for a load generator.
    @inline(__always)
    mutating func below(_ bound: Int) -> Int {
        Int((next() >> 1) % UInt64(bound))
    }
}
