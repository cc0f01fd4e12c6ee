import Glibc

/// SIGINT, SIGTERM and SIGHUP for the commands that run children: blocked in every thread
/// and taken one by one on a thread of their own (sigwaitinfo), so they never interrupt a
/// wait or a call, and the handler may do anything.
enum Signals {
    static let handled: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    private static var set: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in handled { sigaddset(&set, signal) }
        return set
    }

    /// Blocks the signals in this thread and so in every thread it starts afterwards: call it
    /// before connecting (the connection starts its reader thread).
    static func block() {
        var blocked = set
        pthread_sigmask(SIG_BLOCK, &blocked, nil)
    }

    /// Calls `handler(signal, sentByAProcess)` for each signal, on a dedicated thread.
    /// `sentByAProcess` is false for a signal the kernel generated (Ctrl-C at the terminal,
    /// a hang-up): the terminal sends those to the whole foreground process group, so the
    /// child, which is in ours, already has it and must not get it twice.
    static func handle(_ handler: @escaping (Int32, Bool) -> Void) {
        _ = JoinableThread {
            var waited = set
            var info = siginfo_t()
            while true {
                let signal = sigwaitinfo(&waited, &info)
                if signal < 0 { continue }
                handler(signal, info.si_code <= 0)   // SI_USER, SI_QUEUE, SI_TKILL: kill() and friends
            }
        }
    }
}
