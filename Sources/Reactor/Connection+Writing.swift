import CUV

extension Connection {
    /// Writes everything in `output` (for TLS: seals it into records and writes those): uv_try_write first, and whatever the kernel does not take now
    /// is copied aside and queued with uv_write. Bytes appended while that write is in flight wait
    /// for the next flush(), and then go out after it, in order. Cheap no-op when output is empty.
    public func flush() {
        guard !isClosed, !output.isEmpty else { return }
        if tls != nil {
            // Released plaintext becomes TLS records now; the records are what goes out.
            if !sealOutput() { return }
            flushedPrefix = sealed.count
        } else {
            flushedPrefix = output.count
        }
        if writeInFlight { return }
        writeFlushedPrefix()
        afterWriteProgress()
    }

    /// Writes every sealed TLS record now (handshake messages, alerts, close_notify): they
    /// acknowledge no state, so they need not wait for the end of the turn.
    func flushSealed() {
        guard !isClosed, !sealed.isEmpty else { return }
        flushedPrefix = sealed.count
        if writeInFlight { return }
        writeFlushedPrefix()
        afterWriteProgress()
    }

    /// The bytes the socket writes: `output` itself, or for TLS the records sealed from it.
    private var wire: [UInt8] {
        _read { yield tls == nil ? output : sealed }
        _modify {
            if tls == nil { yield &output } else { yield &sealed }
        }
    }

    /// uv_buf_t lengths are 32-bit; a bigger output goes out in several writes.
    private static let maxWriteChunk = 1 << 30

    private func writeFlushedPrefix() {
        while flushedPrefix > 0 && !writeInFlight && !isClosed {
            let count = min(flushedPrefix, Connection.maxWriteChunk)
            let stream = self.stream
            let status: Int32 = wire.withUnsafeBytes { bytes in
                // libuv's uv_buf_t is not const-qualified, but try_write only reads it.
                let base = UnsafeMutableRawPointer(mutating: bytes.baseAddress!)
                var buffer = uv_buf_init(base.assumingMemoryBound(to: CChar.self), UInt32(count))
                return uv_try_write(stream, &buffer, 1)
            }
            var written = 0
            if status >= 0 {
                written = Int(status)
            } else if status != UV_EAGAIN.rawValue {
                close()                    // EPIPE, ECONNRESET: the peer is gone
                return
            }
            if written < count && !queueWrite(from: written, upTo: count) { return }
            removeFromOutput(count)
            flushedPrefix -= count
        }
    }

    /// Copies output[start..<end] into the in-flight buffer and hands it to uv_write.
    private func queueWrite(from start: Int, upTo end: Int) -> Bool {
        let count = end - start
        if count > inFlightCapacity {
            inFlight?.deallocate()
            inFlight = .allocate(byteCount: count, alignment: 16)
            inFlightCapacity = count
        }
        let destination = inFlight!
        wire.withUnsafeBytes { bytes in
            destination.copyMemory(from: bytes.baseAddress! + start, byteCount: count)
        }
        var buffer = uv_buf_init(destination.assumingMemoryBound(to: CChar.self), UInt32(count))
        let status = uv_write(writeRequest, stream, &buffer, 1, connectionWrote)
        if status != 0 {
            close()
            return false
        }
        inFlightCount = count
        writeInFlight = true
        return true
    }

    private func removeFromOutput(_ count: Int) {
        if count == wire.count {
            // Keep a modest buffer for the next turn's answers; give back what a burst grew.
            let keep = wire.capacity <= 256 * 1024
            wire.removeAll(keepingCapacity: keep)
        } else {
            wire.removeSubrange(0..<count)
        }
    }

    fileprivate func didWrite(status: Int32) {
        writeInFlight = false
        inFlightCount = 0
        if inFlightCapacity > 256 * 1024 {
            inFlight?.deallocate()
            inFlight = nil
            inFlightCapacity = 0
        }
        if isClosed { return }          // UV_ECANCELED from our own close()
        if status < 0 {
            close()
            return
        }
        writeFlushedPrefix()
        afterWriteProgress()
    }

    /// After bytes left: finish a closeAfterFlush, or lift back-pressure once below half the mark.
    private func afterWriteProgress() {
        closeIfFlushed()
        if isClosed { return }
        if pausedForBackpressure {
            if unsentByteCount <= outputHighWater / 2 {
                pausedForBackpressure = false
                updateReading()
            }
        } else if unsentByteCount > outputHighWater {
            // Output appended outside line delivery (timers, background jobs) also counts.
            pausedForBackpressure = true
            backpressurePauseCount += 1
            updateReading()
        }
    }
}

private let connectionWrote: uv_write_cb = { request, status in
    Unmanaged<Connection>.fromOpaque(request!.pointee.data).takeUnretainedValue().didWrite(status: status)
}
