import COpenSSL
import Glibc

/// The client side of TLS for AgentdConnection: OpenSSL between two memory BIOs over a blocking
/// socket, so that one thread can read while others write. The SSL object is used under
/// `state`; ciphertext leaves under `sending`, in the order it was made.
final class TLSClientSession: @unchecked Sendable {
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    private let sealedInput: OpaquePointer
    private let sealedOutput: OpaquePointer
    private let fd: Int32
    private let state = Monitor()
    private let sending = Monitor()

    /// Shakes hands on the connected socket `fd`, checking the daemon's certificate against
    /// `caFile` (or the system's CAs) and `host`.
    init(fd: Int32, host: String, caFile: String?) throws {
        self.fd = fd
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TLSClientSession.failure("SSL_CTX_new") }
        self.context = context
        _ = agentd_ssl_ctx_set_min_tls12_client(context)
        if let caFile {
            guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                SSL_CTX_free(context)
                throw TLSClientSession.failure("cannot load the CA file \(caFile)")
            }
        } else {
            SSL_CTX_set_default_verify_paths(context)
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        let ssl = SSL_new(context), input = BIO_new(BIO_s_mem()), output = BIO_new(BIO_s_mem())
        guard let ssl, let input, let output else {
            // Free what was made before the one that failed (the free functions take nil).
            SSL_free(ssl)
            BIO_free(input)
            BIO_free(output)
            SSL_CTX_free(context)
            throw TLSClientSession.failure("SSL_new")
        }
        _ = agentd_bio_set_eof_return(input, -1)
        SSL_set_bio(ssl, input, output)
        SSL_set_connect_state(ssl)
        self.ssl = ssl
        sealedInput = input
        sealedOutput = output
        var address = in6_addr()
        if inet_pton(AF_INET, host, &address) == 1 || inet_pton(AF_INET6, host, &address) == 1 {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
        } else {
            _ = agentd_ssl_set_tlsext_host_name(ssl, host)
            SSL_set1_host(ssl, host)
        }
        try handshake()
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    /// How long the handshake waits for a read from a silent peer before it gives up. Longer
    /// than the 10 s within which the daemon itself closes a connection that has not
    /// authenticated, so a live agentd always answers or closes first.
    static let handshakeTimeoutSeconds: Double = 30

    private func handshake() throws {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let status = SSL_do_handshake(ssl)
            if let error = sendSealed() { throw error }
            if status == 1 { return }
            let code = SSL_get_error(ssl, status)
            guard code == SSL_ERROR_WANT_READ else {
                let verify = SSL_get_verify_result(ssl)
                if verify != X509_V_OK {
                    throw TLSClientSession.failure("the daemon's certificate is not trusted: " +
                                                   String(cString: X509_verify_cert_error_string(verify)))
                }
                throw TLSClientSession.failure("TLS handshake failed")
            }
            // A peer that accepts TCP and never answers must not hang the client for ever.
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let polled = poll(&ready, 1, Int32(TLSClientSession.handshakeTimeoutSeconds * 1000))
            if polled < 0 && errno == EINTR { continue }
            guard polled > 0 else { throw ConnectionError.timedOut(seconds: TLSClientSession.handshakeTimeoutSeconds) }
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw ConnectionError.closed("the daemon closed the connection during the TLS handshake") }
            _ = buffer.withUnsafeBytes { BIO_write(sealedInput, $0.baseAddress!, Int32(count)) }
        }
    }

    /// Seals and sends `bytes`; nil on success.
    func write(_ bytes: [UInt8]) -> ConnectionError? {
        sending.locked {
            let ok: Bool = state.locked {
                bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress!, Int32($0.count)) == Int32(bytes.count) }
            }
            guard ok else { return .closed("TLS write failed") }
            return sendSealed()
        }
    }

    /// Reads plaintext into `buffer`: its count, 0 at the end of the stream, -1 on an error.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var sealed = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let (count, code): (Int32, Int32) = state.locked {
                let count = SSL_read(ssl, buffer.baseAddress!, Int32(buffer.count))
                return (count, count > 0 ? 0 : SSL_get_error(ssl, count))
            }
            if count > 0 { return Int(count) }
            if code == SSL_ERROR_ZERO_RETURN { return 0 }
            guard code == SSL_ERROR_WANT_READ else { return -1 }
            let received = sealed.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if received < 0 && errno == EINTR { continue }
            if received <= 0 { return received == 0 ? 0 : -1 }
            state.locked { _ = sealed.withUnsafeBytes { BIO_write(sealedInput, $0.baseAddress!, Int32(received)) } }
        }
    }

    /// Sends whatever records wait in the output BIO. Call with `sending` held (or during the
    /// handshake, before any other thread exists).
    private func sendSealed() -> ConnectionError? {
        while true {
            let chunk: [UInt8] = state.locked {
                let pending = Int(agentd_bio_pending(sealedOutput))
                guard pending > 0 else { return [] }
                var bytes = [UInt8](repeating: 0, count: pending)
                let read = bytes.withUnsafeMutableBytes { BIO_read(sealedOutput, $0.baseAddress!, Int32(pending)) }
                return read > 0 ? Array(bytes[0..<Int(read)]) : []
            }
            if chunk.isEmpty { return nil }
            var sent = 0
            while sent < chunk.count {
                let n = chunk.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, chunk.count - sent, Int32(MSG_NOSIGNAL)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return .closed("write: \(String(cString: strerror(errno)))") }
                sent += n
            }
        }
    }

    private static func failure(_ what: String) -> ConnectionError {
        var messages: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while case let code = ERR_get_error(), code != 0 {
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(String(cString: buffer))
        }
        return .closed(messages.isEmpty ? what : what + ": " + messages.joined(separator: "; "))
    }
}
