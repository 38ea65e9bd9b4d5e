// RequestParser: HTTP/1.1 request heads parsed in place from a connection's read buffer.
//
// Beast's basic_parser does the syntax work (it is fuzzed and strict); this class keeps only
// what the request path needs, as offsets into the buffer rather than copies. Bodies with a
// Content-Length are not fed through the parser at all: they are read where they lie in the
// buffer. Chunked request bodies are de-chunked into `chunked_body`.
#pragma once

#include <boost/beast/http/basic_parser.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tokenway {

// A range of the request buffer, relative to the start of the message.
struct Slice {
  uint32_t offset = 0;
  uint32_t length = 0;
  std::string_view in(const char* base) const { return {base + offset, length}; }
  bool empty() const { return length == 0; }
};

struct HeaderSlice {
  Slice name;
  Slice value;
};

class RequestParser final : public boost::beast::http::basic_parser<true> {
 public:
  // Longest chunk extension accepted in a chunked request body (RFC 9112 sets no bound; a
  // server must set one).
  static constexpr size_t kMaxChunkExtension = 4096;

  RequestParser(uint32_t header_limit, uint64_t body_limit);

  // Sets where the message starts in the caller's buffer and how many bytes the buffer holds;
  // slices are offsets from `base`, and a value Beast reports from anywhere else is rejected.
  void set_base(const char* base, size_t size) {
    base_ = base;
    size_ = size;
  }

  boost::beast::http::verb method = boost::beast::http::verb::unknown;
  int version = 11;
  Slice target;
  Slice content_type;
  Slice request_id;
  Slice authorization;
  // W3C trace context. `traceparent` is not forwarded (the gateway sends its own); tracestate
  // headers stay in forward_headers and are counted here.
  Slice traceparent;
  uint8_t traceparent_count = 0;  // more than one: invalid, ignored
  uint8_t tracestate_count = 0;
  bool expect_continue = false;
  uint8_t host_count = 0;
  Slice host;  // the first Host header's value
  bool has_transfer_encoding = false;
  // Why the parser refused the request when the reason is tokenway's own rule rather than HTTP
  // syntax (missing or duplicate Host, Transfer-Encoding on HTTP/1.0, a long chunk extension);
  // null otherwise. A static string.
  const char* reject_reason = nullptr;
  // Headers that are passed to the upstream unchanged (end-to-end headers).
  std::vector<HeaderSlice> forward_headers;
  // De-chunked body, for requests sent with Transfer-Encoding: chunked.
  std::string chunked_body;

  // The value of the first end-to-end header called `name` (any case), empty when absent.
  // `base` is the buffer the slices point into.
  std::string_view FindHeader(const char* base, std::string_view name) const;

 private:
  Slice SliceOf(boost::beast::string_view v) const {
    if (v.empty()) return Slice{};
    return Slice{static_cast<uint32_t>(v.data() - base_), static_cast<uint32_t>(v.size())};
  }
  // True when `v` lies in the caller's buffer [base_, base_ + size_). Beast hands out a value
  // folded over several lines (obs-fold) from a scratch buffer of its own, which no slice can
  // describe.
  bool InHead(boost::beast::string_view v) const;
  void on_request_impl(boost::beast::http::verb method, boost::beast::string_view method_str,
                       boost::beast::string_view target, int version,
                       boost::beast::error_code& ec) override;
  void on_response_impl(int, boost::beast::string_view, int, boost::beast::error_code&) override {}
  void on_field_impl(boost::beast::http::field name, boost::beast::string_view name_string,
                     boost::beast::string_view value, boost::beast::error_code& ec) override;
  void on_header_impl(boost::beast::error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>&,
                         boost::beast::error_code&) override {}
  std::size_t on_body_impl(boost::beast::string_view body, boost::beast::error_code&) override;
  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view extensions,
                            boost::beast::error_code& ec) override;
  std::size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                                 boost::beast::error_code&) override;
  void on_finish_impl(boost::beast::error_code&) override {}

  const char* base_ = nullptr;
  size_t size_ = 0;
};

// Case-insensitive ASCII comparison for header values such as media types.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// True for "application/json" with optional parameters ("; charset=utf-8").
bool IsJsonMediaType(std::string_view content_type);

}  // namespace tokenway
