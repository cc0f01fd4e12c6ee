import AgentdBase
/// A list of node indices that holds zero or one element inline and only allocates for more.
/// Most nodes have at most one dependency and one dependent (chains, and the leaves of fans);
/// an Array would cost a heap block of ~48 bytes for each of them.
package struct IndexList: RandomAccessCollection, ExpressibleByArrayLiteral {
    private enum Storage {
        case empty
        case one(Int32)
        case many([Int32])
    }

    private var storage: Storage = .empty

    package init() {}

    package init(_ elements: [Int32]) {
        switch elements.count {
        case 0: storage = .empty
        case 1: storage = .one(elements[0])
        default: storage = .many(elements)
        }
    }

    package init(arrayLiteral elements: Int32...) { self.init(elements) }

    package var startIndex: Int { 0 }

    package var endIndex: Int {
        switch storage {
        case .empty: return 0
        case .one: return 1
        case let .many(elements): return elements.count
        }
    }

    package subscript(position: Int) -> Int32 {
        switch storage {
        case .empty: preconditionFailure("IndexList index out of range")
        case let .one(element):
            precondition(position == 0, "IndexList index out of range")
            return element
        case let .many(elements): return elements[position]
        }
    }

    package mutating func append(_ element: Int32) {
        switch storage {
        case .empty:
            storage = .one(element)
        case let .one(first):
            storage = .many([first, element])
        case var .many(elements):
            // Release the enum's reference first so the append does not copy the buffer.
            storage = .empty
            elements.append(element)
            storage = .many(elements)
        }
    }
}
