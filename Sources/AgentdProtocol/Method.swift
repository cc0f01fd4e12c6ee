import AgentdBase
import AgentdCore
/// Every method the daemon answers to. Each also answers to its snake_case name.
package enum Method: CaseIterable {
    case describeInterface, health, metrics
    case registerTask, acquireNextNode, commitEvent, heartbeatNode, completeNode, failNode, taskStatus
    case acquireResourceLock, heartbeatResourceLock, releaseResourceLock, listResourceLocks
    case addNodes, retryNode, cancelTask, listTasks, deleteTask, readEvents

    /// The canonical name, as DescribeInterface lists it.
    package var name: String {
        switch self {
        case .describeInterface: return "DescribeInterface"
        case .health: return "Health"
        case .metrics: return "Metrics"
        case .registerTask: return "RegisterTask"
        case .acquireNextNode: return "AcquireNextNode"
        case .commitEvent: return "CommitEvent"
        case .heartbeatNode: return "HeartbeatNode"
        case .completeNode: return "CompleteNode"
        case .failNode: return "FailNode"
        case .taskStatus: return "TaskStatus"
        case .acquireResourceLock: return "AcquireResourceLock"
        case .heartbeatResourceLock: return "HeartbeatResourceLock"
        case .releaseResourceLock: return "ReleaseResourceLock"
        case .listResourceLocks: return "ListResourceLocks"
        case .addNodes: return "AddNodes"
        case .retryNode: return "RetryNode"
        case .cancelTask: return "CancelTask"
        case .listTasks: return "ListTasks"
        case .deleteTask: return "DeleteTask"
        case .readEvents: return "ReadEvents"
        }
    }

    /// The original ignores the params of these methods, whatever JSON they are (a number, an
    /// array, null...), so a client of it may send anything there. ListResourceLocks still reads
    /// `prefix` when params is an object.
    package var ignoresParams: Bool {
        switch self {
        case .describeInterface, .health, .metrics, .listResourceLocks: return true
        default: return false
        }
    }

    /// Names beyond the canonical one and its snake_case form.
    package var aliases: [String] {
        switch self {
        case .taskStatus: return ["GetTaskStatus", "get_task_status"]
        default: return []
        }
    }

    /// "AcquireNextNode" -> "acquire_next_node".
    package static func snakeCase(_ name: String) -> String {
        var out = ""
        for (offset, character) in name.enumerated() {
            if character.isUppercase {
                if offset > 0 { out.append("_") }
                out.append(contentsOf: character.lowercased())
            } else {
                out.append(character)
            }
        }
        return out
    }
}

/// Finds a method by the raw bytes of its name without building a String on the hot path.
package struct MethodTable {
    /// The names of each length, so that a lookup (every request makes one) compares a few
    /// candidates byte for byte instead of walking every name.
    private var byLength: [[(name: [UInt8], method: Method)]] = []

    package init() {
        for method in Method.allCases {
            for name in [method.name, Method.snakeCase(method.name)] + method.aliases {
                let bytes = Array(name.utf8)
                while byLength.count <= bytes.count { byLength.append([]) }
                byLength[bytes.count].append((bytes, method))
            }
        }
    }

    package func lookup(_ name: UnsafeRawBufferPointer) -> Method? {
        guard name.count < byLength.count, let base = name.baseAddress else { return nil }
        for entry in byLength[name.count] {
            if entry.name.withUnsafeBytes({ JSONBytes.equal($0.baseAddress!, base, count: name.count) }) { return entry.method }
        }
        return nil
    }

    package func lookup(_ name: String) -> Method? {
        var copy = name
        return copy.withUTF8 { lookup(UnsafeRawBufferPointer($0)) }
    }
}
