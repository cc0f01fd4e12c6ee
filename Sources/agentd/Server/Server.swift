import AgentdBase
import AgentdCore
import AgentdStore
import AgentdProtocol
import Glibc
import Reactor

/// The glue: socket lines into the RequestHandler, answers into connection buffers, and at the
/// end of each loop turn one COMMIT of everything that changed, then the answers go out.
/// Nothing is sent before the state it acknowledges is on disk.
final class Server: ConnectionDelegate {
    private let loop: EventLoop
    private let clock: SystemClock
    private let coordinator: Coordinator
    private let store: Store
    private let handler: RequestHandler
    private let listener: UnixListener
    private let expiryTimer: Timer
    /// `--sync normal`: syncs the WAL in the background within the interval of each commit.
    private let walSync: WALSyncSchedule?
    private var armedDeadlineMs: Int64?
    private var connections: [UInt64: Connection] = [:]
    /// Connections with answers waiting for this turn's commit, by id.
    private var awaitingFlush: [UInt64: Connection] = [:]
    private var shuttingDown = false
    /// Answers held back behind a parked request, per connection: answers leave in request order.
    private var heldAnswers: [UInt64: HeldAnswers] = [:]
    /// Parked requests by waiter id: where and how to answer them.
    private var parked: [UInt64: (connection: Connection, request: RequestHandler.ParkedRequest)] = [:]
    private var scratch: [UInt8] = []
    /// Big answers being written a slice a turn, by connection (at most one per connection:
    /// later answers of that connection wait behind it in `heldAnswers`).
    private var streams: [UInt64: (connection: Connection, stream: TaskStatusStream)] = [:]
    /// Keeps the loop turning while a stream has slices to write.
    private var streamTimer: Timer
    /// The TLS listeners and their agents' tokens, when `--listen` is given.
    var network: NetworkAccess?

    init(loop: EventLoop, clock: SystemClock, coordinator: Coordinator, store: Store,
         handler: RequestHandler, listener: UnixListener, walSync: WALSyncSchedule? = nil) {
        self.loop = loop
        self.clock = clock
        self.coordinator = coordinator
        self.store = store
        self.handler = handler
        self.listener = listener
        self.expiryTimer = Timer(loop: loop)
        self.streamTimer = Timer(loop: loop)
        handler.streamsBigAnswers = true
        self.walSync = walSync
    }

    /// Starts serving: accepted connections, the end-of-turn commit, the expiry timer, signals.
    func start() {
        coordinator.onWaiterResolved = { [unowned self] waiter, outcome in self.answerParked(waiter, outcome) }
        loop.onEndOfTurn { [unowned self] in self.endOfTurn() }
        // What expired while the daemon was down is already changed in memory: write it now.
        commitOrDie()
        armExpiryTimer()
    }

    // MARK: - Connection events

    /// The listener's accept callback.
    func accept(_ connection: Connection) {
        connection.delegate = self
        connections[connection.id] = connection
    }

    /// A TLS listener's accept callback: the connection must authenticate before anything else.
    func acceptNetwork(_ connection: Connection) {
        accept(connection)
        network?.admit(connection)
    }

    func connection(_ connection: Connection, didReceiveLine line: UnsafeRawBufferPointer) {
        guard let session = connection.userData else { return handle(line, on: connection) }
        // Only network connections carry a session.
        let agent = unsafeDowncast(session, to: AgentSession.self)
        guard let name = agent.agent else {
            let refused = network?.authenticate(agent, line: line, into: &connection.output) ?? true
            if !connection.output.isEmpty { awaitingFlush[connection.id] = connection }
            if refused { connection.closeAfterFlush() }
            return
        }
        handler.defaultOwner = name
        handle(line, on: connection)
        handler.defaultOwner = nil
    }

    @inline(__always)
    private func handle(_ line: UnsafeRawBufferPointer, on connection: Connection) {
        let id = connection.id
        if heldAnswers[id] == nil {
            // The common case: nothing parked here, the answer goes straight to the output.
            if let request = handler.handle(line: line, connection: id, into: &connection.output) {
                heldAnswers[id] = HeldAnswers(slots: [.parked(request.waiter)])
                parked[request.waiter] = (connection, request)
            } else if let stream = handler.startedStream {
                // Its head is in the output; the nodes follow a slice a turn, and the
                // connection's later answers wait behind it.
                handler.startedStream = nil
                heldAnswers[id] = HeldAnswers(slots: [.streaming])
                streams[id] = (connection, stream)
            }
        } else {
            handleBehindHeldAnswers(line, on: connection)
        }
        if !connection.output.isEmpty { awaitingFlush[id] = connection }
    }

    /// A request on a connection whose earlier answers wait (a parked request or a stream ahead
    /// of it): its answer is built whole and held in order behind them.
    private func handleBehindHeldAnswers(_ line: UnsafeRawBufferPointer, on connection: Connection) {
        let id = connection.id
        scratch.removeAll(keepingCapacity: true)
        handler.streamsBigAnswers = false
        let request = handler.handle(line: line, connection: id, into: &scratch)
        handler.streamsBigAnswers = true
        // Handling this request may have answered the parked ones before it (a CompleteNode
        // that makes a node runnable for this connection's own parked acquire), and with them
        // released every held answer: then nothing is held any more.
        var held = heldAnswers[id] ?? HeldAnswers(slots: [])
        if let request {
            held.slots.append(.parked(request.waiter))
            parked[request.waiter] = (connection, request)
        } else if !scratch.isEmpty {
            held.slots.append(.ready(scratch))
            held.readyBytes += scratch.count
        }
        heldAnswers[id] = held
        releaseHeldAnswers(of: connection)
        // Held answers are output the client has not been sent yet: past the high-water
        // mark, stop reading this connection as the Reactor does for its output.
        if var held = heldAnswers[id], !held.pausedReading, held.readyBytes > connection.outputHighWater {
            held.pausedReading = true
            heldAnswers[id] = held
            connection.pauseReading()
        }
    }

    /// A parked request ended: its answer takes its place in the connection's order.
    private func answerParked(_ waiter: Waiter, _ outcome: WaiterOutcome) {
        guard let (connection, request) = parked.removeValue(forKey: waiter.id) else { return }
        var answer: [UInt8] = []
        handler.appendResolution(outcome, of: request, to: &answer)
        guard var held = heldAnswers[connection.id],
              let position = held.slots.firstIndex(where: { $0.isParked(waiter.id) }) else { return }
        held.slots[position] = .ready(answer)
        held.readyBytes += answer.count
        heldAnswers[connection.id] = held
        releaseHeldAnswers(of: connection)
    }

    /// Moves the answers at the front that are ready into the output, up to the first parked one.
    private func releaseHeldAnswers(of connection: Connection) {
        guard var held = heldAnswers[connection.id] else { return }
        var released = 0
        for slot in held.slots {
            guard case let .ready(bytes) = slot else { break }
            connection.output.append(contentsOf: bytes)
            held.readyBytes -= bytes.count
            released += 1
        }
        held.slots.removeFirst(released)
        if held.pausedReading && (held.slots.isEmpty || held.readyBytes <= connection.outputHighWater / 2) {
            held.pausedReading = false
            connection.resumeReading()
        }
        if held.slots.isEmpty {
            heldAnswers[connection.id] = nil
            if held.closeWhenAnswered { connection.closeAfterFlush() }
        } else {
            heldAnswers[connection.id] = held
        }
        if !connection.output.isEmpty { awaitingFlush[connection.id] = connection }
    }

    func connectionDidReceiveOversizedLine(_ connection: Connection) {
        RequestHandler.appendError(.tooLarge, id: .none, to: &connection.output)
        awaitingFlush[connection.id] = connection
    }

    func connectionDidReachEOF(_ connection: Connection) {
        // A peer that stops sending leaves every queue at once; its parked requests are
        // answered now (null), so a half-closed client still reads every answer.
        if heldAnswers[connection.id] != nil {
            heldAnswers[connection.id]?.closeWhenAnswered = true
            coordinator.endWaiters(ofConnection: connection.id)
        } else {
            connection.closeAfterFlush()
        }
    }

    func connectionDidClose(_ connection: Connection) {
        if connection.userData != nil { network?.connectionClosed(connection) }
        connections[connection.id] = nil
        awaitingFlush[connection.id] = nil
        if let held = heldAnswers.removeValue(forKey: connection.id) {
            for case let .parked(waiter) in held.slots { parked[waiter] = nil }
        }
        streams.removeValue(forKey: connection.id)?.stream.cancel()
        coordinator.connectionClosed(connection.id)
        if shuttingDown && connections.isEmpty { loop.stop() }
    }

    // MARK: - End of the loop turn

    private func endOfTurn() {
        if !streams.isEmpty { continueStreams() }
        commitOrDie()
        if store.wantsCheckpoint {
            store.checkpointStarted()
            let store = self.store
            loop.runInBackground({ store.checkpoint() }, then: { store.checkpointFinished() })
        }
        for connection in awaitingFlush.values where !connection.isClosed {
            connection.flush()
        }
        awaitingFlush.removeAll(keepingCapacity: true)
        armExpiryTimer()
        // The next turn (timers, reads, close callbacks) reads the time afresh, once.
        clock.markStale()
        if shuttingDown && connections.isEmpty { loop.stop() }
    }

    /// One slice of each big answer in progress, for a connection whose earlier output has
    /// mostly left (a reader that does not read gets no more slices, so memory stays bounded).
    /// The slices describe the snapshot taken when the request came, so they may leave after
    /// any later turn's COMMIT. Then the loop is kept turning until every stream is done.
    private func continueStreams(all: Bool = false) {
        var progressed = false
        for (id, entry) in streams {
            let connection = entry.connection
            guard all || connection.unsentByteCount < 1 << 20 else { continue }
            progressed = true
            let done = all ? entry.stream.appendSlice(maxNodes: .max, to: &connection.output)
                           : entry.stream.appendSlice(to: &connection.output)
            awaitingFlush[id] = connection
            guard done else { continue }
            streams[id] = nil
            if var held = heldAnswers[id], case .streaming = held.slots.first {
                held.slots.removeFirst()
                heldAnswers[id] = held
                releaseHeldAnswers(of: connection)
            }
        }
        if !streams.isEmpty {
            // Next turn at once (a zero timer keeps libuv from blocking in poll); a reader whose
            // output is still full is looked at again a millisecond later.
            streamTimer.start(afterMs: progressed ? 0 : 1) {}
        }
    }

    /// Crash-only: if the batch cannot be written, no client has been told yes for it. Exit
    /// non-zero without sending a thing; a restart recovers what was committed before.
    private func commitOrDie() {
        let wrote = !coordinator.changes.isEmpty
        do {
            try store.commit(from: coordinator)
            if wrote { walSync?.committed() }
        } catch {
            Log.error("commit failed, exiting without answering the batch: \(error)")
            exit(1)
        }
    }

    private func armExpiryTimer() {
        let next = coordinator.nextDeadlineMs
        guard next != armedDeadlineMs else { return }
        armedDeadlineMs = next
        guard let next else {
            expiryTimer.stop()
            return
        }
        clock.markStale()
        let delay = UInt64(max(0, next - clock.wallMs))
        expiryTimer.start(afterMs: delay) { [unowned self] in
            self.armedDeadlineMs = nil
            self.coordinator.expireDue()
            // The commit and re-arming happen at the end of this loop turn.
        }
    }

    // MARK: - Shutdown

    /// Stop accepting, answer what is queued, commit, remove the socket, and let the loop end.
    func shutDown() {
        guard !shuttingDown else { return }
        shuttingDown = true
        Log.info("shutting down")
        listener.close(removingSocketFile: true)
        network?.stopListening()
        coordinator.endAllWaiters()
        continueStreams(all: true)
        commitOrDie()
        for connection in connections.values {
            connection.flush()
            connection.closeAfterFlush()
        }
        expiryTimer.stop()
        walSync?.stop()
        // A peer that never reads must not hold the exit up for ever.
        let deadline = Timer(loop: loop)
        deadline.start(afterMs: 2000) { [unowned self] in self.loop.stop() }
        if connections.isEmpty { loop.stop() }
    }
}

/// Answers of one connection that must wait for a parked request before them.
private struct HeldAnswers {
    enum Slot {
        case parked(UInt64)
        case ready([UInt8])
        /// A big answer being written to the output a slice a turn (always the first slot).
        case streaming

        func isParked(_ waiter: UInt64) -> Bool {
            if case let .parked(id) = self { return id == waiter }
            return false
        }
    }

    var slots: [Slot]
    var closeWhenAnswered = false
    /// The bytes of the `.ready` slots.
    var readyBytes = 0
    /// Reading was paused because `readyBytes` passed the connection's high-water mark.
    var pausedReading = false
}
