/// Receives a connection's input and lifecycle events, always on the loop thread.
/// Any callback may call `close()`, `closeAfterFlush()`, `pauseReading()` or `flush()`.
public protocol ConnectionDelegate: AnyObject {
    /// One complete line, without its "\n" (a "\r" before it is left in; the caller trims).
    /// The pointer is only valid during the call. Called synchronously from the read callback, once per
    /// line, in order; one read drains every complete line it holds, unless the connection is closed,
    /// paused, or over its output high-water mark, in which case the remaining lines wait.
    func connection(_ connection: Connection, didReceiveLine line: UnsafeRawBufferPointer)

    /// A line passed Connection.defaultMaxLineBytes (counting its "\n"). Reading has already stopped and the
    /// line is discarded; the delegate may append an answer to `output`. The connection then closes
    /// once all output is written, which needs a `flush()` (normally the end-of-turn flush).
    func connectionDidReceiveOversizedLine(_ connection: Connection)

    /// The peer half-closed (EOF). A last line without "\n" was delivered just before this.
    /// Writing still works. Default: `connection.closeAfterFlush()`.
    func connectionDidReachEOF(_ connection: Connection)

    /// The connection is closed (by either side, or on error) and its resources are released.
    /// Called exactly once, from libuv's close callback (never re-entrantly from `close()`). That
    /// runs after the end-of-turn hook, so the Reactor brings a prompt next turn for what it changed.
    func connectionDidClose(_ connection: Connection)
}

extension ConnectionDelegate {
    public func connectionDidReceiveOversizedLine(_ connection: Connection) {}
    public func connectionDidReachEOF(_ connection: Connection) { connection.closeAfterFlush() }
    public func connectionDidClose(_ connection: Connection) {}
}
