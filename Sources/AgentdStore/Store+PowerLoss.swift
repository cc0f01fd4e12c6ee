import CPowerLoss
import CSQLite

extension Store {
    /// Test-only: every connection opened after this runs on the power-loss simulator, a SQLite
    /// VFS that keeps each file's writes in memory until its next sync, so that a SIGKILL loses
    /// exactly what a power cut would. With `checkpointMark`, the first database write of a
    /// checkpoint creates that file and pauses half a second, so a harness can cut in the middle.
    package static func usePowerLossSimulator(checkpointMark: String?) throws {
        let rc = agentd_powerloss_install(checkpointMark, checkpointMark == nil ? 0 : 500)
        guard rc == SQLITE_OK else {
            throw SQLiteError(code: rc, message: "cannot install the power-loss simulator")
        }
    }
}
