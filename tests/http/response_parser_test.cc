// ResponseParser: upstream response heads and de-framed bodies; plus http_text helpers.
#include "http/response_parser.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <string>

#include "http/http_text.h"

namespace tokenway {
namespace {

namespace http = boost::beast::http;
using boost::beast::error_code;

// Drives a ResponseParser like the proxy: bytes arrive `step` at a time into a contiguous buffer;
// whatever the parser consumed is dropped. The head is parsed non-eagerly, then the body eagerly.
// `eof` delivers end-of-stream after the last byte.
struct Outcome {
  error_code ec;
  bool done = false;
};

Outcome Feed(ResponseParser& p, const std::string& wire, size_t step, bool eof) {
  Outcome o;
  std::string buf;
  size_t next = 0;
  for (;;) {
    if (next < wire.size()) {
      size_t n = std::min(step, wire.size() - next);
      buf.append(wire, next, n);
      next += n;
    }
    for (;;) {
      if (buf.empty()) break;
      error_code ec;
      size_t n = p.put(boost::asio::buffer(buf.data(), buf.size()), ec);
      buf.erase(0, n);
      if (ec == http::error::need_more) break;
      if (ec) {
        o.ec = ec;
        return o;
      }
      if (p.is_header_done()) p.eager(true);
      if (p.is_done()) {
        o.done = true;
        return o;
      }
      if (n == 0) break;
    }
    if (next == wire.size()) break;
  }
  if (eof) {
    error_code ec;
    p.put_eof(ec);
    o.ec = ec;
    o.done = p.is_done();
  }
  return o;
}

TEST(ResponseParserTest, ContentLength) {
  std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
      "{\"ok\":true}";
  for (size_t step = 1; step <= wire.size(); ++step) {
    std::string body;
    ResponseParser p(8192, 1 << 20, &body);
    Outcome o = Feed(p, wire, step, false);
    ASSERT_FALSE(o.ec) << step << ": " << o.ec.message();
    ASSERT_TRUE(o.done) << step;
    EXPECT_EQ(p.status, 200);
    EXPECT_EQ(p.content_type, "application/json");
    EXPECT_FALSE(p.event_stream);
    EXPECT_EQ(body, "{\"ok\":true}") << step;
  }
}

TEST(ResponseParserTest, ChunkedSplitAtEveryByte) {
  std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
      "Transfer-Encoding: chunked\r\n\r\n"
      "f\r\ndata: {\"a\":1}\n\n\r\n"
      "e\r\ndata: [DONE]\n\n\r\n"
      "0\r\n\r\n";
  for (size_t step = 1; step <= wire.size(); ++step) {
    std::string body;
    ResponseParser p(8192, 1 << 20, &body);
    Outcome o = Feed(p, wire, step, false);
    ASSERT_FALSE(o.ec) << step << ": " << o.ec.message();
    ASSERT_TRUE(o.done) << step;
    EXPECT_TRUE(p.event_stream);
    EXPECT_TRUE(p.chunked());
    EXPECT_EQ(body, "data: {\"a\":1}\n\ndata: [DONE]\n\n") << step;
  }
}

TEST(ResponseParserTest, CloseDelimited) {
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n";
  for (size_t step : {size_t{1}, size_t{5}, wire.size()}) {
    std::string body;
    ResponseParser p(8192, 1 << 20, &body);
    Outcome o = Feed(p, wire, step, false);
    EXPECT_FALSE(o.done);
    EXPECT_TRUE(p.need_eof());
    EXPECT_TRUE(p.event_stream);
    o = Feed(p, "", 1, true);
    EXPECT_FALSE(o.ec) << o.ec.message();
    EXPECT_TRUE(o.done);
    EXPECT_EQ(body, "data: x\n\n");
  }
}

TEST(ResponseParserTest, SinkCanBeSwitched) {
  std::string wire = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom";
  std::string first, second;
  ResponseParser p(8192, 1 << 20, &first);
  error_code ec;
  size_t n = p.put(boost::asio::buffer(wire.data(), wire.size()), ec);
  ASSERT_FALSE(ec);
  ASSERT_TRUE(p.is_header_done());
  EXPECT_EQ(p.status, 500);
  EXPECT_TRUE(p.content_type.empty());
  p.set_sink(&second);
  p.eager(true);
  p.put(boost::asio::buffer(wire.data() + n, wire.size() - n), ec);
  ASSERT_FALSE(ec);
  EXPECT_TRUE(p.is_done());
  EXPECT_EQ(first, "");
  EXPECT_EQ(second, "boom");
}

TEST(ResponseParserTest, EventStreamDetection) {
  for (auto [ct, want] : {std::pair{"text/event-stream", true},
                          {"Text/Event-Stream;charset=x", true},
                          {"text/event", false},
                          {"application/json", false},
                          {"text/plain", false}}) {
    std::string wire =
        std::string("HTTP/1.1 200 OK\r\nContent-Type: ") + ct + "\r\nContent-Length: 0\r\n\r\n";
    std::string body;
    ResponseParser p(8192, 1 << 20, &body);
    error_code ec;
    p.put(boost::asio::buffer(wire.data(), wire.size()), ec);
    ASSERT_FALSE(ec) << ct;
    EXPECT_EQ(p.event_stream, want) << ct;
    EXPECT_EQ(p.content_type, ct);
  }
}

TEST(ResponseParserTest, Garbage) {
  for (const char* bad :
       {"garbage\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1 200 OK\r\nX\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n"}) {
    std::string body;
    ResponseParser p(8192, 1 << 20, &body);
    Outcome o = Feed(p, bad, std::string(bad).size(), false);
    EXPECT_TRUE(o.ec) << bad;
    EXPECT_NE(o.ec, http::error::need_more) << bad;
  }
}

TEST(ResponseParserTest, BodyLimit) {
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'x');
  std::string body;
  ResponseParser p(8192, 1024, &body);
  Outcome o = Feed(p, wire, wire.size(), false);
  EXPECT_EQ(o.ec, http::error::body_limit) << o.ec.message();
}

TEST(ResponseParserTest, TruncatedBodyAtEofIsAnError) {
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
  std::string body;
  ResponseParser p(8192, 1 << 20, &body);
  Outcome o = Feed(p, wire, wire.size(), true);
  EXPECT_TRUE(o.ec);
  EXPECT_FALSE(o.done);
}

TEST(HttpTextTest, StatusLineAndChunkSize) {
  std::string out;
  AppendStatusLine(out, 200);
  AppendStatusLine(out, 429);
  AppendStatusLine(out, 599);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nHTTP/1.1 429 Too Many Requests\r\nHTTP/1.1 599 Server Error\r\n");
  out.clear();
  AppendChunkSize(out, 0);
  AppendChunkSize(out, 15);
  AppendChunkSize(out, 4096);
  AppendChunkSize(out, 0xabcdef);
  EXPECT_EQ(out, "0\r\nf\r\n1000\r\nabcdef\r\n");
  EXPECT_EQ(ReasonPhrase(404), "Not Found");
  EXPECT_EQ(ReasonPhrase(418), "Client Error");
}

}  // namespace
}  // namespace tokenway
