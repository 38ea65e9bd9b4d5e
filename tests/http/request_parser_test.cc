// RequestParser: request heads as slices of the read buffer, chunked bodies de-chunked.
#include "http/request_parser.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <string>

namespace tokenway {
namespace {

namespace http = boost::beast::http;
using boost::beast::error_code;

// Drives a RequestParser the way ClientSession does: the head is parsed from the start of a
// growing contiguous buffer; a chunked body is then fed eagerly from where the head ended.
struct Parsed {
  error_code ec;
  bool header_done = false;
  size_t head_size = 0;
};

Parsed ParseHead(RequestParser& p, const std::string& buf, size_t step = 0) {
  Parsed r;
  if (step == 0) step = buf.size();
  size_t parsed = 0;  // Beast may consume the request line before the head is complete
  for (size_t have = std::min(step, buf.size());; have = std::min(have + step, buf.size())) {
    p.set_base(buf.data(), buf.size());
    r.ec = {};
    parsed += p.put(boost::asio::buffer(buf.data() + parsed, have - parsed), r.ec);
    if (!r.ec && p.is_header_done()) {
      r.header_done = true;
      r.head_size = parsed;
      return r;
    }
    if (r.ec && r.ec != http::error::need_more) return r;
    if (have == buf.size()) return r;
  }
}

// Feeds the chunked body after the head, `step` bytes more each round.
error_code ParseChunkedBody(RequestParser& p, const std::string& buf, size_t head, size_t step) {
  p.eager(true);
  size_t consumed = head;
  size_t have = std::min(head + step, buf.size());
  while (!p.is_done()) {
    error_code ec;
    size_t n = p.put(boost::asio::buffer(buf.data() + consumed, have - consumed), ec);
    consumed += n;
    if (ec && ec != http::error::need_more) return ec;
    if (p.is_done()) break;
    if (!ec && n > 0) continue;
    if (have == buf.size()) return http::error::need_more;
    have = std::min(have + step, buf.size());
  }
  return {};
}

std::string View(const RequestParser& p, Slice s, const std::string& buf) {
  return std::string(s.in(buf.data()));
}

TEST(RequestParserTest, HeadFieldsAsSlices) {
  std::string req =
      "POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
      "Host: gw:8080\r\n"
      "Content-Type: application/json; charset=utf-8\r\n"
      "Authorization: Bearer sk-123\r\n"
      "X-Request-Id: req-42\r\n"
      "Connection: keep-alive\r\n"
      "Keep-Alive: timeout=5\r\n"
      "Proxy-Connection: keep-alive\r\n"
      "TE: trailers\r\n"
      "Upgrade: h2c\r\n"
      "Content-Length: 2\r\n"
      "X-Custom: a b\r\n"
      "Accept: */*\r\n"
      "\r\n"
      "{}";
  RequestParser p(8192, 1 << 20);
  Parsed r = ParseHead(p, req);
  ASSERT_TRUE(r.header_done) << r.ec.message();
  EXPECT_EQ(r.head_size, req.size() - 2);
  EXPECT_EQ(p.method, http::verb::post);
  EXPECT_EQ(p.version, 11);
  EXPECT_EQ(View(p, p.target, req), "/v1/chat/completions?x=1");
  EXPECT_EQ(View(p, p.content_type, req), "application/json; charset=utf-8");
  EXPECT_EQ(View(p, p.authorization, req), "Bearer sk-123");
  EXPECT_EQ(View(p, p.request_id, req), "req-42");
  EXPECT_TRUE(p.keep_alive());
  EXPECT_FALSE(p.chunked());
  ASSERT_TRUE(p.content_length());
  EXPECT_EQ(*p.content_length(), 2u);
  std::vector<std::pair<std::string, std::string>> fwd;
  for (const auto& h : p.forward_headers)
    fwd.emplace_back(View(p, h.name, req), View(p, h.value, req));
  std::vector<std::pair<std::string, std::string>> want = {
      {"Content-Type", "application/json; charset=utf-8"},
      {"Authorization", "Bearer sk-123"},
      {"X-Custom", "a b"},
      {"Accept", "*/*"}};
  EXPECT_EQ(fwd, want);
}

TEST(RequestParserTest, FindHeaderByCaseInsensitiveName) {
  std::string req =
      "POST /v1/completions HTTP/1.1\r\n"
      "Host: gw:8080\r\n"
      "X-Session-Id: conv-7\r\n"
      "x-session-id: second\r\n"
      "X-Request-Id: req-42\r\n"
      "Connection: keep-alive\r\n"
      "X-Empty:\r\n"
      "Content-Length: 2\r\n"
      "\r\n"
      "{}";
  RequestParser p(8192, 1 << 20);
  ASSERT_TRUE(ParseHead(p, req).header_done);
  const char* base = req.data();
  EXPECT_EQ(p.FindHeader(base, "x-session-id"), "conv-7");  // the first one
  EXPECT_EQ(p.FindHeader(base, "X-SESSION-ID"), "conv-7");
  EXPECT_EQ(p.FindHeader(base, "x-session"), "");
  EXPECT_EQ(p.FindHeader(base, "X-Empty"), "");
  EXPECT_EQ(p.FindHeader(base, ""), "");
  // Consumed by the gateway, not forwarded: never a session key.
  EXPECT_EQ(p.FindHeader(base, "x-request-id"), "");
  EXPECT_EQ(p.FindHeader(base, "connection"), "");
  EXPECT_EQ(p.FindHeader(base, "host"), "");
  // A view into the request buffer, not a copy.
  std::string_view v = p.FindHeader(base, "x-session-id");
  EXPECT_GE(v.data(), req.data());
  EXPECT_LE(v.data() + v.size(), req.data() + req.size());
}

TEST(RequestParserTest, HeadSplitAtEveryByte) {
  std::string req =
      "GET /v1/models HTTP/1.1\r\nHost: x\r\nx-request-id: abc\r\nUser-Agent: t\r\n\r\n";
  RequestParser p(8192, 1 << 20);
  Parsed r = ParseHead(p, req, 1);
  ASSERT_TRUE(r.header_done) << r.ec.message();
  EXPECT_EQ(r.head_size, req.size());
  EXPECT_EQ(p.method, http::verb::get);
  EXPECT_EQ(View(p, p.target, req), "/v1/models");
  EXPECT_EQ(View(p, p.request_id, req), "abc");
  ASSERT_EQ(p.forward_headers.size(), 1u);
  EXPECT_EQ(View(p, p.forward_headers[0].name, req), "User-Agent");
  EXPECT_TRUE(p.content_type.empty());
  EXPECT_TRUE(p.authorization.empty());
}

TEST(RequestParserTest, KeepAliveRules) {
  struct Case {
    const char* head;
    bool keep_alive;
    int version;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true, 11},
      {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false, 11},
      {"GET / HTTP/1.0\r\n\r\n", false, 10},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, 10},
  };
  for (const auto& c : cases) {
    std::string req = c.head;
    RequestParser p(8192, 1 << 20);
    Parsed r = ParseHead(p, req);
    ASSERT_TRUE(r.header_done) << c.head << r.ec.message();
    EXPECT_EQ(p.keep_alive(), c.keep_alive) << c.head;
    EXPECT_EQ(p.version, c.version) << c.head;
  }
}

TEST(RequestParserTest, ExpectContinue) {
  std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: "
      "5\r\n\r\n";
  RequestParser p(8192, 1 << 20);
  ASSERT_TRUE(ParseHead(p, req).header_done);
  EXPECT_TRUE(p.expect_continue);
  // Expect is not forwarded.
  EXPECT_TRUE(p.forward_headers.empty());
}

TEST(RequestParserTest, ChunkedBodyIsDechunkedAtEverySplit) {
  std::string head =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      "Content-Type: application/json\r\n\r\n";
  std::string body = "5\r\n{\"a\":\r\nA;ext=1\r\n\"0123456\"}\r\n0\r\nTrailer-X: 1\r\n\r\n";
  std::string req = head + body;
  for (size_t step : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, req.size()}) {
    RequestParser p(8192, 1 << 20);
    Parsed r = ParseHead(p, req, step);
    ASSERT_TRUE(r.header_done) << step;
    EXPECT_EQ(r.head_size, head.size());
    EXPECT_TRUE(p.chunked());
    error_code ec = ParseChunkedBody(p, req, r.head_size, step);
    ASSERT_FALSE(ec) << "step " << step << ": " << ec.message();
    EXPECT_TRUE(p.is_done());
    EXPECT_EQ(p.chunked_body, "{\"a\":\"0123456\"}") << "step " << step;
    // Transfer-Encoding is hop-by-hop.
    ASSERT_EQ(p.forward_headers.size(), 1u);
    EXPECT_EQ(View(p, p.target, req), "/v1/chat/completions");
  }
}

// Regression: trailer fields of a chunked body were recorded as head fields (an Authorization
// trailer replaced the head's, and trailer slices pointed past the head in the buffer).
TEST(RequestParserTest, TrailerFieldsAreNotHeadFields) {
  std::string head =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      "Authorization: Bearer head\r\n\r\n";
  std::string req = head +
                    "2\r\n{}\r\n0\r\nAuthorization: Bearer trailer\r\n"
                    "X-Request-Id: t\r\nX-Other: 1\r\n\r\n";
  RequestParser p(8192, 1 << 20);
  Parsed r = ParseHead(p, req);
  ASSERT_TRUE(r.header_done);
  ASSERT_FALSE(ParseChunkedBody(p, req, r.head_size, req.size()));
  EXPECT_EQ(p.chunked_body, "{}");
  EXPECT_EQ(View(p, p.authorization, req), "Bearer head");
  EXPECT_TRUE(p.request_id.empty());
  ASSERT_EQ(p.forward_headers.size(), 1u);
  EXPECT_EQ(View(p, p.forward_headers[0].value, req), "Bearer head");
}

// Regression (found by the http_request fuzzer): Beast unfolds an obs-fold value into a scratch
// buffer of its own, so its slice pointed outside the request buffer and the gateway would have
// forwarded arbitrary memory. Folded values are now rejected as RFC 9112 allows.
TEST(RequestParserTest, ObsFoldIsRejected) {
  for (const char* folded :
       {"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n\tsk\r\n\r\n"}) {
    std::string req = folded;
    RequestParser p(8192, 1 << 20);
    Parsed r = ParseHead(p, req);
    EXPECT_FALSE(r.header_done) << folded;
    EXPECT_EQ(r.ec, http::error::bad_value) << folded << r.ec.message();
  }
}

// A fold before any value text is only leading whitespace: Beast keeps that value in place.
TEST(RequestParserTest, FoldBeforeTheValueIsWhitespace) {
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n b\r\nX-B: c\r\n\r\n";
  RequestParser p(8192, 1 << 20);
  Parsed r = ParseHead(p, req);
  ASSERT_TRUE(r.header_done) << r.ec.message();
  ASSERT_EQ(p.forward_headers.size(), 2u);
  EXPECT_EQ(View(p, p.forward_headers[0].value, req), "b");
  EXPECT_EQ(View(p, p.forward_headers[1].value, req), "c");
}

TEST(RequestParserTest, EmptyHeaderValueIsForwarded) {
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Ws:   \r\n\r\n";
  RequestParser p(8192, 1 << 20);
  Parsed r = ParseHead(p, req);
  ASSERT_TRUE(r.header_done) << r.ec.message();
  ASSERT_EQ(p.forward_headers.size(), 2u);
  EXPECT_EQ(View(p, p.forward_headers[0].name, req), "X-Empty");
  EXPECT_EQ(View(p, p.forward_headers[0].value, req), "");
  EXPECT_EQ(View(p, p.forward_headers[1].value, req), "");
}

TEST(RequestParserTest, MalformedChunkedBody) {
  std::string req =
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n";
  RequestParser p(8192, 1 << 20);
  Parsed r = ParseHead(p, req);
  ASSERT_TRUE(r.header_done);
  error_code ec = ParseChunkedBody(p, req, r.head_size, req.size());
  EXPECT_TRUE(ec);
  EXPECT_NE(ec, http::error::need_more);
}

TEST(RequestParserTest, HeaderLimit) {
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n";
  RequestParser p(1024, 1 << 20);
  Parsed r = ParseHead(p, req);
  EXPECT_FALSE(r.header_done);
  EXPECT_EQ(r.ec, http::error::header_limit) << r.ec.message();
}

TEST(RequestParserTest, BodyLimitFromContentLength) {
  std::string req = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n";
  RequestParser p(8192, 4096);
  Parsed r = ParseHead(p, req);
  EXPECT_EQ(r.ec, http::error::body_limit) << r.ec.message();
}

TEST(RequestParserTest, BodyLimitOnChunkedBody) {
  std::string req = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" +
                    std::string(4096, 'x') + "\r\n0\r\n\r\n";
  RequestParser p(8192, 1024);
  Parsed r = ParseHead(p, req);
  ASSERT_TRUE(r.header_done);
  error_code ec = ParseChunkedBody(p, req, r.head_size, req.size());
  EXPECT_EQ(ec, http::error::body_limit) << ec.message();
}

TEST(RequestParserTest, MalformedRequestLines) {
  for (const char* bad :
       {"GARBAGE\r\n\r\n", "GET\r\n\r\n", "GET / HTTP/2.5\r\n\r\n", "GET / FTP/1.1\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\nContent-Length: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "\x01\x02\x03\r\n\r\n"}) {
    std::string req = bad;
    RequestParser p(8192, 1 << 20);
    Parsed r = ParseHead(p, req);
    EXPECT_FALSE(r.header_done) << bad;
    EXPECT_TRUE(r.ec) << bad;
    EXPECT_NE(r.ec, http::error::need_more) << bad;
  }
}

TEST(RequestParserTest, IncompleteHeadNeedsMore) {
  std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n";
  RequestParser p(8192, 1 << 20);
  Parsed r = ParseHead(p, req);
  EXPECT_FALSE(r.header_done);
  EXPECT_EQ(r.ec, http::error::need_more);
}

TEST(HttpTextHelpersTest, EqualsIgnoreCaseAndJsonMediaType) {
  EXPECT_TRUE(EqualsIgnoreCase("Content-Type", "content-type"));
  EXPECT_FALSE(EqualsIgnoreCase("abc", "abcd"));
  EXPECT_FALSE(EqualsIgnoreCase("abc", "abd"));
  EXPECT_TRUE(IsJsonMediaType("application/json"));
  EXPECT_TRUE(IsJsonMediaType("Application/JSON; charset=utf-8"));
  EXPECT_TRUE(IsJsonMediaType(" application/json ;charset=utf-8"));
  EXPECT_FALSE(IsJsonMediaType("application/jsonl"));
  EXPECT_FALSE(IsJsonMediaType("text/plain"));
  EXPECT_FALSE(IsJsonMediaType(""));
}

// Regression: a head split right after the request line used to be re-fed from its start, and
// Beast, which had already consumed the request line, read it as a field ("bad field").
TEST(RequestParserTest, HeadSplitAfterRequestLineParses) {
  const std::string buf = "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  for (size_t step = 1; step < buf.size(); ++step) {
    RequestParser p(8192, 1 << 20);
    Parsed r = ParseHead(p, buf, step);
    ASSERT_TRUE(r.header_done) << "step " << step << ": " << r.ec.message();
    EXPECT_EQ(r.head_size, buf.size());
    EXPECT_EQ(p.target.in(buf.data()), "/v1/models");
  }
}

}  // namespace
}  // namespace tokenway
