/// Iteration over containers by hopping `next` links, so each step is O(1) however
/// large the skipped child is.

/// (key, value) token index pairs of an object, in document order.
struct JSONMemberSequence: Sequence {
    let tokens: [JSONTape.Token]
    let first: Int
    let count: Int

    struct Iterator: IteratorProtocol {
        let tokens: [JSONTape.Token]
        var keyIndex: Int
        var remaining: Int

        mutating func next() -> (key: Int, value: Int)? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            let key = keyIndex
            keyIndex = Int(tokens[key + 1].next)
            return (key, key + 1)
        }
    }

    func makeIterator() -> Iterator {
        Iterator(tokens: tokens, keyIndex: first, remaining: count)
    }

    var underestimatedCount: Int { count }
}

/// Element token indices of an array, in order.
struct JSONElementSequence: Sequence {
    let tokens: [JSONTape.Token]
    let first: Int
    let count: Int

    struct Iterator: IteratorProtocol {
        let tokens: [JSONTape.Token]
        var index: Int
        var remaining: Int

        mutating func next() -> Int? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            let current = index
            index = Int(tokens[current].next)
            return current
        }
    }

    func makeIterator() -> Iterator {
        Iterator(tokens: tokens, index: first, remaining: count)
    }

    var underestimatedCount: Int { count }
}
