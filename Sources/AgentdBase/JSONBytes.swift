#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libc's memcmp behind a Swift name, so the JSON files need no platform imports.
package enum JSONBytes {
    @inline(__always)
    package static func equal(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count: Int) -> Bool {
        memcmp(a, b, count) == 0
    }

    /// The `count` bytes at `a` are exactly `b` (same length, same bytes).
    @inline(__always)
    package static func equal(_ a: UnsafeRawPointer, count: Int, _ b: UnsafeRawBufferPointer) -> Bool {
        count == b.count && (count == 0 || memcmp(a, b.baseAddress!, count) == 0)
    }
}
