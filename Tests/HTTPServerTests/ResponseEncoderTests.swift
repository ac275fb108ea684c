// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import HTTPServer

/// The head is assembled on the stack when it fits and written straight to the buffer when it
/// does not; both must produce the same bytes, appended after what the buffer already holds.
@Suite struct ResponseEncoderTests {
    static let date = Array("Sun, 22 Nov 2026 12:00:00 GMT".utf8)

    /// The head built by hand, the way RFC 9112 §4 and §5 lay it out.
    static func expected(_ response: HTTPResponse, close: Bool, keepAlive: Bool) -> String {
        var text = "HTTP/1.1 \(response.status.code) \(response.status.reasonPhrase)\r\n"
        for field in response.headers where !["content-length", "date", "connection", "transfer-encoding"].contains(field.name.lowercased()) {
            text += "\(field.name): \(field.value)\r\n"
        }
        if !response.status.forbidsBody { text += "Content-Length: \(response.body.count)\r\n" }
        text += "Date: \(String(decoding: date, as: UTF8.self))\r\n"
        if close { text += "Connection: close\r\n" } else if keepAlive { text += "Connection: keep-alive\r\n" }
        return text + "\r\n"
    }

    @Test(arguments: [0, 10, 900, 1_024, 5_000])
    func headsOfEverySizeMatchTheHandBuiltHead(_ valueBytes: Int) {
        var headers: HTTPHeaders = ["Content-Type": "text/plain", "Content-Length": "999", "Date": "never"]
        headers.add(name: "X-Large", value: String(repeating: "v", count: valueBytes))
        let response = HTTPResponse(status: .ok, headers: headers, body: Array(repeating: 0x61, count: 12_345))
        for (close, keepAlive) in [(false, false), (true, false), (false, true)] {
            var out = Array("previous".utf8)
            let sendBody = ResponseEncoder.appendHead(
                response, framing: .init(isHead: false, close: close, keepAliveHeader: keepAlive), date: Self.date, to: &out)
            #expect(sendBody)
            #expect(String(decoding: out, as: UTF8.self) == "previous" + Self.expected(response, close: close, keepAlive: keepAlive))
        }
    }

    @Test func noContentAndHeadRequestsSendNoBody() {
        var out: [UInt8] = []
        let noContent = HTTPResponse(status: HTTPStatus(code: 204, reasonPhrase: "No Content"), body: [1])
        #expect(!ResponseEncoder.appendHead(noContent, framing: .init(isHead: false, close: false, keepAliveHeader: false), date: Self.date, to: &out))
        #expect(String(decoding: out, as: UTF8.self) == Self.expected(noContent, close: false, keepAlive: false))
        out.removeAll()
        let head = HTTPResponse(status: .ok, body: [1, 2, 3])
        #expect(!ResponseEncoder.appendHead(head, framing: .init(isHead: true, close: false, keepAliveHeader: false), date: Self.date, to: &out))
        #expect(String(decoding: out, as: UTF8.self).contains("Content-Length: 3\r\n"))
    }
}
