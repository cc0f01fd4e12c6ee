/// An aligned text table: a header row, then one row per item, columns two spaces apart.
/// Widths are measured on the plain text, so colour never shifts a column.
struct Table {
    struct Cell {
        var text: String
        var colour: Style.Colour?

        init(_ text: String, _ colour: Style.Colour? = nil) {
            self.text = text
            self.colour = colour
        }
    }

    var headers: [String]
    /// Columns whose cells are right-aligned (numbers).
    var rightAligned: Set<Int> = []
    private(set) var rows: [[Cell]] = []

    init(_ headers: [String], rightAligned: Set<Int> = []) {
        self.headers = headers
        self.rightAligned = rightAligned
    }

    mutating func add(_ cells: [Cell]) { rows.append(cells) }

    var isEmpty: Bool { rows.isEmpty }

    func render(_ style: Style) -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.text.count) }
        }
        func line(_ cells: [Cell]) -> String {
            var out = ""
            for (i, cell) in cells.enumerated() where i < widths.count {
                let last = i == widths.count - 1
                let pad = String(repeating: " ", count: widths[i] - cell.text.count)
                let painted = style.paint(cell.text, cell.colour)
                if rightAligned.contains(i) {
                    out += pad + painted
                } else {
                    out += painted + (last ? "" : pad)
                }
                if !last { out += "  " }
            }
            return out
        }
        var lines = [line(headers.map { Cell($0, .bold) })]
        lines += rows.map(line)
        return lines.joined(separator: "\n")
    }
}

/// Cuts text to at most `limit` characters, with an ellipsis when it was longer; newlines
/// become spaces so a row stays one line.
func shortened(_ text: String, to limit: Int) -> String {
    let flat = text.replacingNewlines()
    guard flat.count > limit, limit > 1 else { return flat }
    return String(flat.prefix(limit - 1)) + "…"
}

extension String {
    func replacingNewlines() -> String {
        guard contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\t" }) else { return self }
        return String(map { $0 == "\n" || $0 == "\r" || $0 == "\t" ? " " : $0 })
    }
}
