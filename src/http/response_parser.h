// ResponseParser: an upstream's HTTP/1.1 response, head and de-framed body.
//
// The body (Content-Length, chunked, or until close) is appended to `sink` as it is decoded, so
// the streaming relay sees event bytes as soon as they arrive and non-streaming responses are
// collected whole. One parser per upstream response.
#pragma once

#include <boost/beast/http/basic_parser.hpp>
#include <cstdint>
#include <string>

namespace tokenway {

class ResponseParser final : public boost::beast::http::basic_parser<false> {
 public:
  // `content_type_storage`: a string whose capacity the Content-Type value may reuse (a caller
  // that parses many responses hands back the previous parser's `content_type`).
  ResponseParser(uint32_t header_limit, uint64_t body_limit, std::string* sink,
                 std::string content_type_storage = {});

  // Where de-framed body bytes go from now on (e.g. switched to the event splitter once the
  // head says the body is an event stream).
  void set_sink(std::string* sink) { sink_ = sink; }

  int status = 0;
  std::string content_type;
  bool event_stream = false;  // Content-Type: text/event-stream

 private:
  void on_request_impl(boost::beast::http::verb, boost::beast::string_view,
                       boost::beast::string_view, int, boost::beast::error_code&) override {}
  void on_response_impl(int code, boost::beast::string_view reason, int version,
                        boost::beast::error_code& ec) override;
  void on_field_impl(boost::beast::http::field name, boost::beast::string_view name_string,
                     boost::beast::string_view value, boost::beast::error_code& ec) override;
  void on_header_impl(boost::beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&,
                         boost::beast::error_code&) override {}
  std::size_t on_body_impl(boost::beast::string_view body, boost::beast::error_code&) override;
  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view,
                            boost::beast::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                                 boost::beast::error_code&) override;
  void on_finish_impl(boost::beast::error_code&) override {}

  std::string* sink_;
};

}  // namespace tokenway
