import Glibc

/// Splits a byte stream into "\n"-terminated lines without copying complete lines: a line that lies
/// inside the bytes being fed is handed out as a pointer into them. Only bytes that must outlive the
/// caller's buffer are copied into `carry`: the unfinished tail of a read, or, when delivery was
/// stopped mid-read, everything after the stop ("stashed" bytes, delivered later by `drain`).
///
/// A line may hold at most `maxLineBytes - 1` bytes before its "\n". A longer one is refused as soon
/// as it is known to be too long, without waiting for its end and without buffering past the limit.
package final class LineFramer {
    package enum Outcome: Equatable {
        /// Every complete line was delivered; any unfinished tail is kept for the next feed.
        case needMoreBytes
        /// `deliver` returned false; undelivered bytes are stashed (`hasStashedLines`).
        case stopped
        /// A line passed the limit. It and everything after it in this feed was discarded.
        case oversized
    }

    package let maxLineBytes: Int

    // carry[carryStart..<carryEnd] is pending input. When hasStashedLines is false it is one
    // unfinished line (no "\n" in it) and carryStart is 0.
    private var carry: UnsafeMutableRawPointer?
    private var carryCapacity = 0
    private var carryStart = 0
    private var carryEnd = 0
    private(set) var hasStashedLines = false

    /// Above this, the carry buffer is given back once empty, so a single huge line does not pin a
    /// megabyte to an idle connection.
    private static let retainedCarryCapacity = 64 * 1024

    package init(maxLineBytes: Int) {
        precondition(maxLineBytes > 0)
        self.maxLineBytes = maxLineBytes
    }

    deinit {
        carry?.deallocate()
    }

    /// Bytes of an unfinished line (or stashed input) currently held.
    package var bufferedByteCount: Int { carryEnd - carryStart }

    /// Feeds one read. `deliver` gets each complete line without its "\n" (the pointer is valid only
    /// during the call) and returns whether delivery may continue.
    package func feed(_ bytes: UnsafeRawBufferPointer,
              _ deliver: (UnsafeRawBufferPointer) -> Bool) -> Outcome {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return .needMoreBytes }
        if hasStashedLines {
            // Only happens if the owner reads while lines are still stashed; keep order anyway.
            appendToCarry(base, bytes.count)
            return drain(deliver)
        }
        let end = base + bytes.count
        var cursor = base

        if carryEnd > 0 {
            // Finish the line started by earlier reads.
            guard let newline = memchr(cursor, 0x0A, bytes.count) else {
                if carryEnd + bytes.count >= maxLineBytes { return refuse() }
                appendToCarry(cursor, bytes.count)
                return .needMoreBytes
            }
            let head = UnsafeRawPointer(newline) - cursor
            if carryEnd + head >= maxLineBytes { return refuse() }
            appendToCarry(cursor, head)
            let goOn = deliver(UnsafeRawBufferPointer(start: carry, count: carryEnd))
            carryEnd = 0
            trimCarry()
            cursor = UnsafeRawPointer(newline) + 1
            if !goOn { return stash(cursor, end - cursor) }
        }

        while cursor < end {
            guard let newline = memchr(cursor, 0x0A, end - cursor) else {
                let tail = end - cursor
                if tail >= maxLineBytes { return refuse() }
                appendToCarry(cursor, tail)
                return .needMoreBytes
            }
            let length = UnsafeRawPointer(newline) - cursor
            if length >= maxLineBytes { return refuse() }
            let goOn = deliver(UnsafeRawBufferPointer(start: cursor, count: length))
            cursor = UnsafeRawPointer(newline) + 1
            if !goOn { return stash(cursor, end - cursor) }
        }
        return .needMoreBytes
    }

    /// Delivers stashed complete lines, in order, until `deliver` says stop or none is left.
    package func drain(_ deliver: (UnsafeRawBufferPointer) -> Bool) -> Outcome {
        guard hasStashedLines, let carry else { return .needMoreBytes }
        var cursor = carryStart
        while cursor < carryEnd {
            let start = carry + cursor
            guard let newline = memchr(start, 0x0A, carryEnd - cursor) else { break }
            let length = UnsafeMutableRawPointer(newline) - start
            if length >= maxLineBytes { return refuse() }
            let goOn = deliver(UnsafeRawBufferPointer(start: start, count: length))
            cursor += length + 1
            if !goOn {
                carryStart = cursor
                if carryStart == carryEnd { clearCarry() }
                return .stopped
            }
        }
        // What is left has no "\n": it becomes the unfinished line.
        let tail = carryEnd - cursor
        if tail >= maxLineBytes { return refuse() }
        if cursor > 0 && tail > 0 { memmove(carry, carry + cursor, tail) }
        carryStart = 0
        carryEnd = tail
        hasStashedLines = false
        trimCarry()
        return .needMoreBytes
    }

    /// End of input: delivers stashed lines and then the unfinished last line, if any.
    package func finish(_ deliver: (UnsafeRawBufferPointer) -> Bool) -> Outcome {
        if hasStashedLines {
            let outcome = drain(deliver)
            if outcome != .needMoreBytes { return outcome }
        }
        if carryEnd > 0 {
            _ = deliver(UnsafeRawBufferPointer(start: carry, count: carryEnd))
        }
        clearCarry()
        return .needMoreBytes
    }

    /// Drops everything held and frees the carry buffer.
    package func reset() {
        carryStart = 0
        carryEnd = 0
        hasStashedLines = false
        carry?.deallocate()
        carry = nil
        carryCapacity = 0
    }

    // MARK: - Carry buffer

    private func refuse() -> Outcome {
        clearCarry()
        return .oversized
    }

    private func stash(_ start: UnsafeRawPointer, _ count: Int) -> Outcome {
        if count > 0 {
            // carry is empty here: a stop only happens right after a line was delivered.
            appendToCarry(start, count)
            hasStashedLines = true
        }
        return .stopped
    }

    private func clearCarry() {
        carryStart = 0
        carryEnd = 0
        hasStashedLines = false
        trimCarry()
    }

    private func trimCarry() {
        if carryEnd == 0 && carryCapacity > LineFramer.retainedCarryCapacity {
            carry?.deallocate()
            carry = nil
            carryCapacity = 0
        }
    }

    private func appendToCarry(_ start: UnsafeRawPointer, _ count: Int) {
        guard count > 0 else { return }
        let needed = carryEnd + count
        if needed > carryCapacity {
            var capacity = max(carryCapacity * 2, 4096)
            while capacity < needed { capacity *= 2 }
            let grown = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
            if let carry {
                grown.copyMemory(from: carry, byteCount: carryEnd)
                carry.deallocate()
            }
            carry = grown
            carryCapacity = capacity
        }
        (carry! + carryEnd).copyMemory(from: start, byteCount: count)
        carryEnd = needed
    }
}
