import Histogram

/// Latencies in nanoseconds (HdrHistogram, 3 significant digits, up to 10 minutes).
struct LatencyStats {
    private(set) var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1,
                                                   highestTrackableValue: 600_000_000_000,
                                                   numberOfSignificantValueDigits: .three)

    @inline(__always)
    mutating func record(_ nanos: UInt64) {
        _ = histogram.record(Swift.max(nanos, 1))
    }

    mutating func reset() { histogram.reset() }

    var count: UInt64 { histogram.totalCount }
    var p50: UInt64 { histogram.valueAtPercentile(50) }
    var p99: UInt64 { histogram.valueAtPercentile(99) }
    var p999: UInt64 { histogram.valueAtPercentile(99.9) }
    var max: UInt64 { histogram.max }
    var mean: Double { histogram.mean }

    /// `p50=.. p99=.. p999=.. max=..` in microseconds, for RESULT lines.
    var resultFields: String {
        "p50=\(micros(p50)) p99=\(micros(p99)) p999=\(micros(p999)) max=\(micros(max))"
    }

    /// `p50 380.0 us  p99 ...` for human lines.
    var humanFields: String {
        "p50 \(micros(p50)) us  p99 \(micros(p99)) us  p99.9 \(micros(p999)) us  max \(micros(max)) us"
    }
}
