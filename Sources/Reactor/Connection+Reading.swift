import CUV

extension Connection {
    /// Turns libuv reading on or off to match the connection's state, and schedules delivery of
    /// stashed lines when nothing blocks it any more. Called after every state change.
    func updateReading() {
        let blocked = isClosed || closingAfterFlush || pausedByOwner || pausedForBackpressure
        let stashed = framer.hasStashedLines || tlsInputPending
        if !blocked && stashed && !drainScheduled {
            drainScheduled = true
            loop.scheduleDrain(self)
        }
        // Stashed lines go first: reading resumes once they are delivered.
        let wanted = !blocked && !sawEOF && !stashed
        if wanted && !isReading {
            let status = uv_read_start(stream, connectionAllocate, connectionRead)
            if status != 0 {
                close()
                return
            }
            isReading = true
        } else if !wanted && isReading {
            uv_read_stop(stream)
            isReading = false
        }
    }

    /// Hands one line to the delegate and says whether the next one may follow right away.
    @inline(__always)
    func deliver(_ line: UnsafeRawBufferPointer) -> Bool {
        delegate?.connection(self, didReceiveLine: line)
        if isClosed || closingAfterFlush || pausedByOwner || pausedForBackpressure { return false }
        // Checked per line, so unsent output stays within the high-water mark plus one answer.
        if unsentByteCount > outputHighWater {
            pausedForBackpressure = true
            backpressurePauseCount += 1
            return false
        }
        return true
    }

    fileprivate func didRead(_ bytes: UnsafeRawBufferPointer) {
        bytesReceived &+= UInt64(bytes.count)
        if tls != nil {
            didReadSealed(bytes)
            return
        }
        let outcome = framer.feed(bytes) { line in self.deliver(line) }
        finishDelivery(outcome)
    }

    fileprivate func didReachEOF() {
        sawEOF = true
        isReading = false               // libuv stopped reading when it saw EOF
        if tls != nil {
            // Records still buffered in the session are the peer's last words.
            pumpPlaintext()
            if isClosed { return }
        }
        _ = framer.finish { line in self.deliver(line) }
        if isClosed { return }
        if let delegate {
            delegate.connectionDidReachEOF(self)
        } else {
            closeAfterFlush()
        }
    }

    /// Called by the loop (idle phase) to deliver lines stashed when delivery stopped mid-read.
    func drainStashedLines() {
        drainScheduled = false
        if isClosed || closingAfterFlush || pausedByOwner || pausedForBackpressure { return }
        let outcome = framer.drain { line in self.deliver(line) }
        if tls != nil && outcome == .needMoreBytes && tlsInputPending {
            pumpPlaintext()
            return
        }
        finishDelivery(outcome)
    }

    func finishDelivery(_ outcome: LineFramer.Outcome) {
        if isClosed { return }
        if outcome == .oversized {
            refuseOversizedLine()
            return
        }
        updateReading()
    }

    private func refuseOversizedLine() {
        closingAfterFlush = true
        updateReading()
        delegate?.connectionDidReceiveOversizedLine(self)
        closeAfterFlush()
    }
}

/// Every connection reads into its loop's one shared buffer (see EventLoop.readBuffer).
private let connectionAllocate: uv_alloc_cb = { handle, _, buffer in
    let connection = Unmanaged<Connection>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
    buffer!.pointee = uv_buf_init(connection.loop.readBuffer.assumingMemoryBound(to: CChar.self),
                                  UInt32(EventLoop.readBufferSize))
}

private let connectionRead: uv_read_cb = { stream, count, buffer in
    let connection = Unmanaged<Connection>.fromOpaque(stream!.pointee.data).takeUnretainedValue()
    if count > 0 {
        connection.didRead(UnsafeRawBufferPointer(start: buffer!.pointee.base, count: count))
    } else if count == Int(UV_EOF.rawValue) {
        connection.didReachEOF()
    } else if count < 0 {
        connection.close()            // ECONNRESET and friends
    }
    // count == 0: nothing to read right now (EAGAIN); libuv just hands the buffer back.
}
