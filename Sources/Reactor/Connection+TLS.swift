import COpenSSL

/// The TLS layer of a connection, between the socket and the line framer. Ciphertext read from
/// the socket goes into the session's input BIO; the plaintext it opens is framed exactly as a
/// Unix socket's bytes are (same line limit, same stops for back-pressure). Answers are appended
/// to `output` as plaintext and sealed into records only at `flush()`, i.e. after the turn's
/// COMMIT, so commit-then-answer holds on TLS too.
extension Connection {
    /// Turns TLS on for a connection that has not started reading: the server side (TCPListener
    /// does this) or, with a client context, the client side checking `serverName` (TCPConnector).
    func enableTLS(_ context: TLSContext, serverName: String? = nil) -> Bool {
        guard let session = TLSSession(context: context, serverName: serverName) else { return false }
        tls = session
        return true
    }

    /// A client session speaks first: sends the ClientHello. The replies drive the rest of the
    /// handshake from `didReadSealed`, which runs `onTLSHandshake` when it is done.
    func startClientHandshake() {
        guard let tls, !tls.failed, !tls.handshakeDone else { return }
        let status = SSL_do_handshake(tls.ssl)
        let error = SSL_get_error(tls.ssl, status)
        guard status != 1, error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE else {
            failTLS()
            return
        }
        moveRecordsOut()
        flushSealed()
    }

    /// The negotiated TLS version ("TLSv1.3"), or nil for a plain connection or before the handshake.
    public var tlsProtocolVersion: String? {
        guard let tls, tls.handshakeDone else { return nil }
        return tls.protocolVersion
    }

    /// Bytes from the socket on a TLS connection.
    func didReadSealed(_ bytes: UnsafeRawBufferPointer) {
        guard let tls, !tls.failed else { return }
        let written = BIO_write(tls.sealedInput, bytes.baseAddress, Int32(bytes.count))
        guard written == Int32(bytes.count) else {
            failTLS()
            return
        }
        if !tls.handshakeDone {
            let status = SSL_do_handshake(tls.ssl)
            if status != 1 {
                let error = SSL_get_error(tls.ssl, status)
                if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE {
                    moveRecordsOut()
                    flushSealed()
                    return
                }
                failTLS()
                return
            }
            tls.handshakeDone = true
            if let handshakeDone = onTLSHandshake {
                onTLSHandshake = nil
                handshakeDone()
                if isClosed { return }
            }
        }
        if framer.hasStashedLines {
            // Reading is off while lines are stashed, but keep order if bytes come anyway.
            tlsInputPending = true
            moveRecordsOut()
            flushSealed()
            updateReading()
            return
        }
        pumpPlaintext()
    }

    /// Opens every whole record the session holds and frames the plaintext, until the session
    /// needs more bytes or delivery stops (paused, over the high-water mark, closing); then what
    /// is left waits in the session (`tlsInputPending`) as stashed lines wait in the framer.
    func pumpPlaintext() {
        guard let tls, !tls.failed else { return }
        tlsInputPending = false
        let buffer = tls.context.plaintext
        while !isClosed {
            let count = SSL_read(tls.ssl, buffer, Int32(TLSContext.plaintextSize))
            if count > 0 {
                let outcome = framer.feed(UnsafeRawBufferPointer(start: buffer, count: Int(count))) { line in
                    self.deliver(line)
                }
                if isClosed { return }
                if outcome == .oversized {
                    moveRecordsOut()
                    finishDelivery(.oversized)
                    return
                }
                if outcome == .stopped || closingAfterFlush || pausedByOwner || pausedForBackpressure {
                    tlsInputPending = true
                    break
                }
                continue
            }
            let error = SSL_get_error(tls.ssl, count)
            if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_ZERO_RETURN { break }
            failTLS()
            return
        }
        if isClosed { return }
        // Only protocol messages can be waiting here: answers are sealed at flush().
        moveRecordsOut()
        flushSealed()
        if isClosed { return }
        finishDelivery(tlsInputPending || framer.hasStashedLines ? .stopped : .needMoreBytes)
    }

    /// Seals all of `output` into records in `sealed`. False if the session cannot send.
    func sealOutput() -> Bool {
        guard let tls, tls.handshakeDone, !tls.failed else {
            output.removeAll()
            return false
        }
        var offset = 0
        let total = output.count
        let ok: Bool = output.withUnsafeBytes { bytes in
            while offset < total {
                let chunk = min(total - offset, 1 << 30)
                let written = SSL_write(tls.ssl, bytes.baseAddress! + offset, Int32(chunk))
                guard written > 0 else { return false }
                offset += Int(written)
            }
            return true
        }
        output.removeAll(keepingCapacity: output.capacity <= 256 * 1024)
        guard ok else {
            failTLS()
            return false
        }
        moveRecordsOut()
        return true
    }

    /// Queues close_notify after the last answer. True if a record is on its way (the connection
    /// closes when it is written).
    func sealCloseNotify() -> Bool {
        guard let tls, tls.handshakeDone, !tls.failed else { return false }
        _ = SSL_shutdown(tls.ssl)
        moveRecordsOut()
        guard !sealed.isEmpty else { return false }
        flushSealed()
        return true
    }

    /// Moves whatever records the session produced into `sealed` (through the loop's plaintext
    /// buffer, which is free whenever this runs).
    func moveRecordsOut() {
        guard let tls else { return }
        let bounce = tls.context.plaintext
        while agentd_bio_pending(tls.sealedOutput) > 0 {
            let count = BIO_read(tls.sealedOutput, bounce, Int32(TLSContext.plaintextSize))
            guard count > 0 else { return }
            sealed.append(contentsOf: UnsafeRawBufferPointer(start: bounce, count: Int(count)))
        }
    }

    /// Not TLS, or TLS gone wrong (plaintext on the TLS port, a bad record): send the alert
    /// OpenSSL made, if any, and close. Answers not yet sealed are dropped.
    func failTLS() {
        guard let tls, !tls.failed else { return }
        moveRecordsOut()
        tls.failed = true
        tlsFailure = tls.failureDescription()
        output.removeAll()
        tlsInputPending = false
        sentCloseNotify = true
        closingAfterFlush = true
        updateReading()
        flushSealed()
        closeIfFlushed()
    }
}
