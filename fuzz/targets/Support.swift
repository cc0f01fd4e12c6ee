// Shared by the fuzz targets: a broken invariant traps with a description, which libFuzzer
// records as a crash (the input that got there is saved).

import AgentdCore
import CoordinatorInvariants

/// Stops the run with a message; libFuzzer saves the input that got here.
func invariantFailure(_ message: String) -> Never {
    fatalError("invariant broken: \(message)")
}

extension InvariantChecker {
    /// The Coordinator's invariants (Sources/CoordinatorInvariants), as a trap.
    mutating func enforce(_ c: Coordinator, expiry: Expiry = .ranNow) {
        do {
            try check(c, expiry: expiry)
        } catch {
            invariantFailure("\(error)")
        }
    }
}
