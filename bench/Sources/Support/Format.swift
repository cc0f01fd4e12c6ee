import Glibc

// Number formatting for reports, without Foundation.

/// `value` with `decimals` digits after the point.
func fixed(_ value: Double, _ decimals: Int) -> String {
    if value.isNaN || value.isInfinite { return "nan" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let negative = value < 0
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale)
    var text = String(whole)
    if decimals > 0 {
        var fraction = String(Int(scaled - Double(whole) * scale))
        while fraction.count < decimals { fraction = "0" + fraction }
        text += "." + fraction
    }
    return negative && scaled != 0 ? "-" + text : text
}

/// Microseconds from nanoseconds, one decimal.
func micros(_ nanos: UInt64) -> String { fixed(Double(nanos) / 1000, 1) }

/// 1234567 -> "1,234,567" for human lines.
func grouped(_ value: Int) -> String {
    let digits = Array(String(value))
    var out = ""
    for (index, digit) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
        out.append(digit)
    }
    return out
}

func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

/// Prints to stderr.
func warn(_ message: String) {
    var line = message
    line += "\n"
    line.withCString { _ = fputs($0, stderr) }
}

/// Prints the message and exits with status 1.
func fail(_ message: String) -> Never {
    warn("bench: " + message)
    DaemonProcess.killAllStarted()
    exit(1)
}
