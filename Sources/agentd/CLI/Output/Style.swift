import AgentdClient
import Glibc

/// ANSI colour for people at a terminal: only when the stream is a TTY, `NO_COLOR` is unset
/// (or empty, as no-color.org says) and the terminal is not "dumb".
struct Style {
    let enabled: Bool

    static let plain = Style(enabled: false)

    static func forStream(_ fd: Int32) -> Style {
        let environment = AgentdEnvironment.processEnvironment()
        let noColor = !(environment["NO_COLOR"] ?? "").isEmpty
        return Style(enabled: isatty(fd) == 1 && !noColor && environment["TERM"] != "dumb")
    }

    static var stdout: Style { forStream(STDOUT_FILENO) }
    static var stderr: Style { forStream(STDERR_FILENO) }

    enum Colour: String {
        case red = "31", green = "32", yellow = "33", blue = "34", magenta = "35", cyan = "36"
        case bold = "1", dim = "2"
    }

    func paint(_ text: String, _ colour: Colour?) -> String {
        guard enabled, let colour, !text.isEmpty else { return text }
        return "\u{1B}[\(colour.rawValue)m\(text)\u{1B}[0m"
    }

    /// The colour of a task or node status (BLOCKED is how the CLI shows a PENDING node that
    /// can never run).
    static func colour(ofStatus status: String) -> Colour? {
        switch status {
        case "COMPLETED": return .green
        case "RUNNING", "ACTIVE": return .cyan
        case "FAILED": return .red
        case "BLOCKED": return .yellow
        case "CANCELLED": return .magenta
        case "PENDING": return .dim
        default: return nil
        }
    }
}
