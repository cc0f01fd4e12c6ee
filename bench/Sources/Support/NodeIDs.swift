/// Node ids the bench chooses itself (for dependencies inside one AddNodes batch), as UUID v4 text:
/// `TTTTTTTT-0000-4000-8000-IIIIIIIIIIII`, a 32-bit tag per DAG and the node's index. Node ids are
/// unique across all tasks of a daemon, so every DAG gets a fresh tag.
struct NodeIDs {
    let tag: UInt32
    private static let hex = Array("0123456789abcdef".utf8)

    init() {
        tag = UInt32(truncatingIfNeeded: monotonicNanos() &* 0x9E37_79B9_7F4A_7C15 >> 17)
    }

    func append(_ index: Int, to output: inout [UInt8]) {
        for shift in stride(from: 28, through: 0, by: -4) { output.append(NodeIDs.hex[Int(tag >> UInt32(shift)) & 15]) }
        output.append("-0000-4000-8000-")
        for shift in stride(from: 44, through: 0, by: -4) { output.append(NodeIDs.hex[(index >> shift) & 15]) }
    }

    func text(_ index: Int) -> String {
        var id: [UInt8] = []
        append(index, to: &id)
        return String(decoding: id, as: UTF8.self)
    }
}
