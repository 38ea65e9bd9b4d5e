#include "http/request_parser.h"

namespace tokenway {

namespace http = boost::beast::http;

RequestParser::RequestParser(uint32_t header_limit, uint64_t body_limit) {
  this->header_limit(header_limit);
  this->body_limit(body_limit);
  this->eager(false);
}

void RequestParser::on_request_impl(http::verb m, boost::beast::string_view,
                                    boost::beast::string_view t, int v, boost::beast::error_code&) {
  method = m;
  target = SliceOf(t);
  version = v;
}

void RequestParser::on_field_impl(http::field name, boost::beast::string_view name_string,
                                  boost::beast::string_view value, boost::beast::error_code& ec) {
  // Fields of a chunked body's trailer arrive here too, after the head and from a later part of
  // the buffer: they are neither forwarded nor allowed to change what the head said.
  if (is_header_done()) return;
  // RFC 9112 section 5.2: a server must reject obs-fold or unfold it; tokenway rejects it (400).
  if (!InHead(value)) {
    ec = http::error::bad_value;
    return;
  }
  switch (name) {
    case http::field::content_type:
      content_type = SliceOf(value);
      forward_headers.push_back({SliceOf(name_string), SliceOf(value)});
      return;
    case http::field::expect:
      if (EqualsIgnoreCase(std::string_view(value.data(), value.size()), "100-continue")) {
        expect_continue = true;
      }
      return;
    case http::field::authorization:
      authorization = SliceOf(value);
      forward_headers.push_back({SliceOf(name_string), SliceOf(value)});
      return;
    // Hop-by-hop and framing headers: the gateway sets its own upstream.
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::te:
    case http::field::trailer:
    case http::field::upgrade:
      return;
    case http::field::host:
      if (host_count == 0) host = SliceOf(value);
      if (host_count < 255) ++host_count;
      return;
    case http::field::transfer_encoding:
      has_transfer_encoding = true;
      return;
    case http::field::content_length:
      return;
    default:
      break;
  }
  std::string_view n(name_string.data(), name_string.size());
  if (EqualsIgnoreCase(n, "x-request-id")) {
    request_id = SliceOf(value);
    return;
  }
  if (EqualsIgnoreCase(n, "traceparent")) {
    if (traceparent_count++ == 0) traceparent = SliceOf(value);
    if (traceparent_count == 0) traceparent_count = 255;  // saturate
    return;
  }
  if (EqualsIgnoreCase(n, "tracestate") && tracestate_count < 255) ++tracestate_count;
  forward_headers.push_back({SliceOf(name_string), SliceOf(value)});
}

void RequestParser::on_header_impl(boost::beast::error_code& ec) {
  // RFC 9112 section 3.2: a server must answer 400 to an HTTP/1.1 request without Host or with
  // more than one. Section 6.1: Transfer-Encoding is HTTP/1.1; a 1.0 message that carries it is
  // faulty framing and must close the connection.
  if (version >= 11 && host_count == 0) {
    reject_reason = "HTTP/1.1 request without a Host header";
  } else if (host_count > 1) {
    reject_reason = "request with more than one Host header";
  } else if (version < 11 && has_transfer_encoding) {
    reject_reason = "Transfer-Encoding in an HTTP/1.0 request";
  }
  if (reject_reason) ec = http::error::bad_field;
}

void RequestParser::on_chunk_header_impl(std::uint64_t, boost::beast::string_view extensions,
                                         boost::beast::error_code& ec) {
  if (extensions.size() > kMaxChunkExtension) {
    reject_reason = "chunk extension longer than 4 KiB";
    ec = http::error::bad_chunk_extension;
  }
}

std::size_t RequestParser::on_body_impl(boost::beast::string_view body, boost::beast::error_code&) {
  chunked_body.append(body.data(), body.size());
  return body.size();
}

std::size_t RequestParser::on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                                              boost::beast::error_code&) {
  chunked_body.append(body.data(), body.size());
  return body.size();
}

bool RequestParser::InHead(boost::beast::string_view v) const {
  if (v.empty()) return true;
  auto p = reinterpret_cast<uintptr_t>(v.data());
  auto b = reinterpret_cast<uintptr_t>(base_);
  return p >= b && p - b <= size_ && v.size() <= size_ - (p - b);
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool IsJsonMediaType(std::string_view ct) {
  size_t semi = ct.find(';');
  std::string_view type = ct.substr(0, semi);
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  return EqualsIgnoreCase(type, "application/json");
}

std::string_view RequestParser::FindHeader(const char* base, std::string_view name) const {
  for (const HeaderSlice& h : forward_headers) {
    if (EqualsIgnoreCase(h.name.in(base), name)) return h.value.in(base);
  }
  return {};
}

}  // namespace tokenway
