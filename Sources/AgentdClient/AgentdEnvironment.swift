import Glibc

/// Where agentd's files are, read as the daemon reads it: `~/.agentd` by default, then the
/// `.env` file there (or `AGENTD_ENV_FILE`), then the process environment, which wins.
/// Clients resolve the socket the same way, so a command finds the daemon that `agentd serve`
/// started with the same settings.
public struct AgentdEnvironment {
    /// The process environment merged over the env file.
    public let values: [String: String]
    public let userHome: String

    public init(processEnvironment: [String: String]) {
        let userHome = processEnvironment["HOME"] ?? "/tmp"
        let defaultHome = userHome + "/.agentd"
        let envFile = processEnvironment["AGENTD_ENV_FILE"]
            ?? ((processEnvironment["AGENTD_HOME"] ?? defaultHome) + "/.env")
        var values = processEnvironment
        for (key, value) in AgentdEnvironment.readEnvFile(envFile) where values[key] == nil { values[key] = value }
        self.values = values
        self.userHome = userHome
    }

    /// The environment of this process.
    public static var current: AgentdEnvironment { AgentdEnvironment(processEnvironment: processEnvironment()) }

    public subscript(key: String) -> String? { values[key] }

    /// `AGENTD_HOME`, else `~/.agentd`.
    public var home: String { expandTilde(values["AGENTD_HOME"] ?? userHome + "/.agentd") }

    /// `AGENTD_SOCKET_PATH`, else `agentd.sock` in the home.
    public var socketPath: String { values["AGENTD_SOCKET_PATH"].map(expandTilde) ?? home + "/agentd.sock" }

    public func expandTilde(_ path: String) -> String { AgentdEnvironment.expandTilde(path, userHome: userHome) }

    public static func expandTilde(_ path: String, userHome: String) -> String {
        if path == "~" { return userHome }
        if path.hasPrefix("~/") { return userHome + path.dropFirst(1) }
        return path
    }

    /// KEY=VALUE lines; `#` comments, blank lines, an `export ` prefix and quotes are allowed.
    public static func readEnvFile(_ path: String) -> [String: String] {
        guard let file = fopen(path, "r") else { return [:] }
        defer { fclose(file) }
        var result: [String: String] = [:]
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        while getline(&line, &capacity, file) > 0 {
            var text = trimmed(String(cString: line!))
            if text.isEmpty || text.hasPrefix("#") { continue }
            if text.hasPrefix("export ") { text = trimmed(String(text.dropFirst(7))) }
            guard let equals = text.firstIndex(of: "=") else { continue }
            let key = trimmed(String(text[..<equals]))
            var value = trimmed(String(text[text.index(after: equals)...]))
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            result[key] = value
        }
        free(line)
        return result
    }

    /// The process environment without Foundation.
    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }

    public static func trimmed(_ text: String) -> String {
        var s = Substring(text)
        while let c = s.first, c == " " || c == "\t" || c == "\r" || c == "\n" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" || c == "\n" { s = s.dropLast() }
        return String(s)
    }
}
