import CUV

// libuv handles are C structs that "inherit" from uv_handle_t / uv_stream_t by sharing a prefix.
// These casts go through OpaquePointer because Swift has no notion of that layout relationship.

@inline(__always)
func asHandle<T>(_ pointer: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_handle_t> {
    UnsafeMutablePointer<uv_handle_t>(OpaquePointer(pointer))
}

@inline(__always)
func asStream<T>(_ pointer: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_stream_t> {
    UnsafeMutablePointer<uv_stream_t>(OpaquePointer(pointer))
}

/// Close callback for handles that carry no Swift owner (half-built ones, loop-internal ones):
/// the only thing left to do is give the memory back, which libuv allows from the close callback on.
let freeHandleOnClose: uv_close_cb = { handle in
    UnsafeMutableRawPointer(handle!).deallocate()
}

/// Something that owns an open libuv handle. The loop keeps a registry of these so that
/// `EventLoop.close()` can close whatever the caller left open.
protocol LoopResource: AnyObject {
    func closeForLoopShutdown()
}
