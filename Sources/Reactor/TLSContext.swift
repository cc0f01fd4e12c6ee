import COpenSSL

/// A TLS failure: the OpenSSL call and what OpenSSL's error queue said.
public struct TLSError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }

    /// `what` followed by every message in OpenSSL's error queue (which this empties).
    static func openSSL(_ what: String) -> TLSError {
        TLSError(what + TLSContext.drainErrorQueue())
    }
}

/// The server side of TLS for a TCPListener: one certificate chain and key (PEM), TLS 1.2 or
/// later (1.3 is negotiated whenever the client offers it), no renegotiation.
///
/// Belongs to one EventLoop, like everything in the Reactor: its plaintext buffer is shared by
/// the connections of that loop, as the loop's read buffer is.
public final class TLSContext {
    let raw: OpaquePointer
    /// Decrypted bytes land here and are framed synchronously, before the next record is opened.
    let plaintext: UnsafeMutableRawPointer
    static let plaintextSize = 64 * 1024

    public init(certificateChainFile: String, privateKeyFile: String) throws {
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw TLSError.openSSL("SSL_CTX_new failed")
        }
        raw = context
        plaintext = .allocate(byteCount: TLSContext.plaintextSize, alignment: 16)
        guard agentd_ssl_ctx_set_min_tls12(context) == 1 else {
            throw TLSError.openSSL("cannot require TLS 1.2 or later")
        }
        _ = SSL_CTX_set_options(context, UInt64(agentd_ssl_op_no_renegotiation()))
        // Idle connections give their 16 KiB record buffers back; a swarm is mostly idle.
        _ = agentd_ssl_ctx_set_mode(context, agentd_ssl_mode_release_buffers())
        // One ticket, not resumption's usual two: clients hold long connections, but a ticket
        // answers the client's Finished at once, and so acknowledges it. Without that answer a
        // client with Nagle on holds its first request back for the delayed ACK (40 ms).
        _ = SSL_CTX_set_num_tickets(context, 1)
        guard SSL_CTX_use_certificate_chain_file(context, certificateChainFile) == 1 else {
            throw TLSError.openSSL("cannot use the certificate \(certificateChainFile)")
        }
        guard SSL_CTX_use_PrivateKey_file(context, privateKeyFile, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError.openSSL("cannot use the private key \(privateKeyFile)")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw TLSError.openSSL("the key \(privateKeyFile) does not match the certificate \(certificateChainFile)")
        }
    }

    deinit {
        SSL_CTX_free(raw)
        plaintext.deallocate()
    }

    /// ": message; message" from OpenSSL's per-thread error queue, or "" when it is empty.
    static func drainErrorQueue() -> String {
        var messages: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while case let code = ERR_get_error(), code != 0 {
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(String(cString: buffer))
        }
        return messages.isEmpty ? "" : ": " + messages.joined(separator: "; ")
    }
}

/// One connection's TLS state: an SSL object between two memory BIOs. The socket's bytes are
/// written into `sealedInput`; records to send are read from `sealedOutput`. OpenSSL never
/// touches the socket, so libuv keeps doing all I/O and the loop never blocks in TLS.
final class TLSSession {
    let context: TLSContext
    let ssl: OpaquePointer
    let sealedInput: OpaquePointer
    let sealedOutput: OpaquePointer
    var handshakeDone = false
    /// A fatal error happened (bad handshake, bad record): the session is not used again.
    var failed = false

    init?(context: TLSContext) {
        guard let ssl = SSL_new(context.raw) else { return nil }
        guard let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            return nil
        }
        // An empty input BIO means "wait for more bytes", not end of stream.
        _ = agentd_bio_set_eof_return(input, -1)
        SSL_set_bio(ssl, input, output)       // the SSL object owns both BIOs from here
        SSL_set_accept_state(ssl)
        self.context = context
        self.ssl = ssl
        sealedInput = input
        sealedOutput = output
    }

    deinit {
        SSL_free(ssl)
    }

    /// The negotiated protocol, e.g. "TLSv1.3".
    var protocolVersion: String { String(cString: SSL_get_version(ssl)) }
}
