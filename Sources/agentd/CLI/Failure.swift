import AgentdClient
import ArgumentParser
import Glibc

/// The exit statuses every command shares (sysexits.h where one fits).
enum ExitStatus {
    static let ok: Int32 = 0
    /// The daemon answered an error, a node failed, or `submit` refused the file.
    static let refused: Int32 = 1
    /// EX_USAGE: the command line (or a setting) is wrong.
    static let usage: Int32 = 64
    /// EX_UNAVAILABLE: no daemon answers on the socket, or the connection broke.
    static let unreachable: Int32 = 69
    /// EX_TEMPFAIL: a lock or a node was not obtained in time (or a lock was lost).
    static let notObtained: Int32 = 75
}

/// How a command ends when it does not succeed: a message for stderr and an exit status.
struct CLIFailure: Error, CustomStringConvertible {
    var message: String
    var status: Int32

    init(_ message: String, status: Int32 = ExitStatus.refused) {
        self.message = message
        self.status = status
    }

    static func usage(_ message: String) -> CLIFailure { CLIFailure(message, status: ExitStatus.usage) }

    /// The daemon's own errors and the connection's, with their exit statuses.
    init(_ error: Error) {
        switch error {
        case let failure as CLIFailure:
            self = failure
        case let error as AgentdError:
            self.init(error.description, status: ExitStatus.refused)
        case let error as ConnectionError:
            self.init(error.description, status: ExitStatus.unreachable)
        default:
            self.init("\(error)", status: ExitStatus.refused)
        }
    }

    var description: String { message }
}

/// Writes one line to stderr, prefixed with the program's name.
func complain(_ message: String) {
    fputs("agentd: \(message)\n", stderr)
}
