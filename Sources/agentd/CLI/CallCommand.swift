import AgentdClient
import Glibc

/// `agentd call METHOD [PARAMS_JSON] [--socket PATH]`: one request, the result printed as
/// indented JSON; an error answer prints its message and exits 1.
enum CallCommand {
    static func run(_ arguments: [String], environment: [String: String]) -> Int32 {
        var positional: [String] = []
        var flags: [String] = []
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            if argument == "--socket" {
                flags.append(argument)
                if let value = rest.popFirst() { flags.append(value) }
            } else {
                positional.append(argument)
            }
        }
        guard (1...2).contains(positional.count) else {
            fputs("usage: agentd call METHOD [PARAMS_JSON] [--socket PATH]\n", stderr)
            return 2
        }
        let config: Configuration
        do {
            config = try Configuration.load(arguments: flags, environment: environment, allowServeFlags: false)
        } catch {
            fputs("agentd: \(error)\n", stderr)
            return 2
        }
        let params = positional.count == 2 ? positional[1] : "{}"
        guard isJSON(params) else {
            fputs("agentd: PARAMS_JSON is not valid JSON: \(params)\n", stderr)
            return 2
        }
        let connection: AgentdConnection
        do {
            connection = try AgentdConnection(socketPath: config.socketPath)
        } catch {
            fputs("agentd: \(error)\n", stderr)
            return 1
        }
        defer { connection.close() }
        do {
            let reply = try connection.callReply(positional[0], try JSONValue.parse(params))
            print(try JSONValue.parse(reply.resultText).prettyText)
            return 0
        } catch let error as AgentdError {
            fputs("agentd: \(error.message)\n", stderr)
            return 1
        } catch {
            fputs("agentd: \(error)\n", stderr)
            return 1
        }
    }

    private static func isJSON(_ text: String) -> Bool {
        (try? JSONValue.parse(text)) != nil
    }
}
