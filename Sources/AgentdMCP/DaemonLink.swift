import AgentdClient

/// The one connection a session holds to the daemon, as the tools use it: requests whose
/// answers come back through a completion, and the moment it ends. `AgentdConnection` is the
/// real one; the tool layer's tests put a scripted daemon in its place.
protocol DaemonLink: AnyObject, Sendable {
    func send(_ method: String, _ params: JSONValue, completion: @escaping @Sendable (Result<JSONValue, Error>) -> Void)
    func onClose(_ handler: @escaping @Sendable (ConnectionError) -> Void)
    func close()
}

extension AgentdConnection: DaemonLink {
    func send(_ method: String, _ params: JSONValue, completion: @escaping @Sendable (Result<JSONValue, Error>) -> Void) {
        send(method, params) { (outcome: Result<AgentdReply, Error>) in completion(outcome.map(\.result)) }
    }
}
