/// Iteration over containers by hopping `next` links, so each step is O(1) however
/// large the skipped child is.

/// (key, value) token index pairs of an object, in document order.
package struct JSONMemberSequence: Sequence {
    package let tokens: [JSONTape.Token]
    package let first: Int
    package let count: Int

    package struct Iterator: IteratorProtocol {
        package let tokens: [JSONTape.Token]
        package var keyIndex: Int
        package var remaining: Int

        package mutating func next() -> (key: Int, value: Int)? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            let key = keyIndex
            keyIndex = Int(tokens[key + 1].next)
            return (key, key + 1)
        }
    }

    package func makeIterator() -> Iterator {
        Iterator(tokens: tokens, keyIndex: first, remaining: count)
    }

    package var underestimatedCount: Int { count }
}

/// Element token indices of an array, in order.
package struct JSONElementSequence: Sequence {
    package let tokens: [JSONTape.Token]
    package let first: Int
    package let count: Int

    package struct Iterator: IteratorProtocol {
        package let tokens: [JSONTape.Token]
        package var index: Int
        package var remaining: Int

        package mutating func next() -> Int? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            let current = index
            index = Int(tokens[current].next)
            return current
        }
    }

    package func makeIterator() -> Iterator {
        Iterator(tokens: tokens, index: first, remaining: count)
    }

    package var underestimatedCount: Int { count }
}
