import COpenSSL
import Glibc

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

/// One side of TLS on memory BIOs, TLS 1.2 or later (1.3 is negotiated whenever both sides
/// offer it), no renegotiation. A server context (a certificate chain and key, PEM) is for a
/// TCPListener; a client context (the CAs it trusts) is for TCPConnector.
///
/// Belongs to one EventLoop, like everything in the Reactor: its plaintext buffer is shared by
/// the connections of that loop, as the loop's read buffer is.
public final class TLSContext {
    let raw: OpaquePointer
    /// True for a context made for TCPConnector: its sessions shake hands as the client.
    public let isClient: Bool
    /// Decrypted bytes land here and are framed synchronously, before the next record is opened.
    let plaintext: UnsafeMutableRawPointer
    static let plaintextSize = 64 * 1024

    /// A server context: presents the chain in `certificateChainFile` with `privateKeyFile`.
    public init(certificateChainFile: String, privateKeyFile: String) throws {
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw TLSError.openSSL("SSL_CTX_new failed")
        }
        raw = context
        isClient = false
        plaintext = .allocate(byteCount: TLSContext.plaintextSize, alignment: 16)
        try configureCommon()
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

    /// A client context: the server's certificate must chain to a certificate in `caFile` (PEM;
    /// the system's CAs when nil), and each session checks it names the host it was made for.
    public init(clientTrusting caFile: String?) throws {
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError.openSSL("SSL_CTX_new failed")
        }
        raw = context
        isClient = true
        plaintext = .allocate(byteCount: TLSContext.plaintextSize, alignment: 16)
        try configureCommon()
        if let caFile {
            guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                throw TLSError.openSSL("cannot load the CA file \(caFile)")
            }
        } else if SSL_CTX_set_default_verify_paths(context) != 1 {
            throw TLSError.openSSL("cannot load the system's CAs")
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
    }

    private func configureCommon() throws {
        guard agentd_ssl_ctx_set_min_tls12(raw) == 1 else {
            throw TLSError.openSSL("cannot require TLS 1.2 or later")
        }
        _ = SSL_CTX_set_options(raw, UInt64(agentd_ssl_op_no_renegotiation()))
        // Idle connections give their 16 KiB record buffers back; a swarm is mostly idle.
        _ = agentd_ssl_ctx_set_mode(raw, agentd_ssl_mode_release_buffers())
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

    /// A session that accepts (server context) or connects (client context). A client session
    /// checks the server's certificate against `serverName`, a host name (also sent as SNI) or an
    /// IP address; nil when `serverName` cannot be set.
    init?(context: TLSContext, serverName: String? = nil) {
        guard let ssl = SSL_new(context.raw) else { return nil }
        guard let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            return nil
        }
        // An empty input BIO means "wait for more bytes", not end of stream.
        _ = agentd_bio_set_eof_return(input, -1)
        SSL_set_bio(ssl, input, output)       // the SSL object owns both BIOs from here
        if context.isClient {
            SSL_set_connect_state(ssl)
            if let serverName, !TLSSession.expectServer(ssl, serverName) {
                SSL_free(ssl)
                return nil
            }
        } else {
            SSL_set_accept_state(ssl)
        }
        self.context = context
        self.ssl = ssl
        sealedInput = input
        sealedOutput = output
    }

    deinit {
        SSL_free(ssl)
    }

    /// Makes the handshake check that the certificate names `name`: an IP address (then its
    /// subjectAltName IP entries) or a host name (its DNS entries; also sent as SNI).
    private static func expectServer(_ ssl: OpaquePointer, _ name: String) -> Bool {
        var address = in6_addr()
        if inet_pton(AF_INET, name, &address) == 1 || inet_pton(AF_INET6, name, &address) == 1 {
            return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1
        }
        return agentd_ssl_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1
    }

    /// Why the handshake failed, for a client: the certificate check's verdict when it failed,
    /// else OpenSSL's error queue (which this empties).
    func failureDescription() -> String {
        let verify = SSL_get_verify_result(ssl)
        let queue = TLSContext.drainErrorQueue()
        if context.isClient && verify != X509_V_OK {
            return "the server's certificate is not trusted: " + String(cString: X509_verify_cert_error_string(verify))
        }
        return "TLS failed" + queue
    }

    /// The negotiated protocol, e.g. "TLSv1.3".
    var protocolVersion: String { String(cString: SSL_get_version(ssl)) }
}
