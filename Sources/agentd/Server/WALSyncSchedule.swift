import AgentdStore
import Glibc
import Reactor

/// `--sync normal`'s bound: the WAL is synced on libuv's thread pool at most `intervalMs` after
/// any commit, however light the load. The first commit after a sync arms a one-shot timer; when
/// it fires, one background sync covers everything committed until then. A commit made while a
/// sync runs is covered by the next one, which starts when its timer fires, or as soon as the
/// running sync ends if that is later. So a change acknowledged at t is on disk by
/// t + interval + the time of at most two syncs; an idle daemon does not wake up at all.
///
/// A sync that fails is treated like a failed commit: the WAL may not be on disk, so the
/// daemon stops (crash-only) rather than keep acknowledging with an unknown window.
final class WALSyncSchedule {
    private let loop: EventLoop
    private let syncer: WALSyncer
    private let intervalMs: UInt64
    private let timer: Timer
    private var running = false
    /// The timer fired while a sync was running: start another as soon as it ends.
    private var owed = false

    init(loop: EventLoop, syncer: WALSyncer, intervalMs: Int64) {
        self.loop = loop
        self.syncer = syncer
        self.intervalMs = UInt64(intervalMs)
        timer = Timer(loop: loop)
        // A pending sync must not keep a stopping loop alive; the stop syncs on its own.
        timer.keepsLoopAlive = false
    }

    /// Call on the loop thread after each commit that wrote something.
    func committed() {
        guard !timer.isActive else { return }
        timer.start(afterMs: intervalMs) { [unowned self] in self.due() }
    }

    func stop() {
        timer.stop()
    }

    private func due() {
        if running {
            owed = true
        } else {
            start()
        }
    }

    private func start() {
        running = true
        let syncer = self.syncer
        var failure: SQLiteError?
        loop.runInBackground({ failure = syncer.sync() }, then: { [unowned self] in
            self.running = false
            if let failure {
                Log.error("\(failure); exiting: acknowledged changes may not be on disk")
                exit(1)
            }
            if self.owed {
                self.owed = false
                self.start()
            }
        })
    }
}
