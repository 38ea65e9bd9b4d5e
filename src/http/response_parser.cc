#include "http/response_parser.h"

#include "http/request_parser.h"

namespace tokenway {

namespace http = boost::beast::http;

ResponseParser::ResponseParser(uint32_t header_limit, uint64_t body_limit, std::string* sink,
                               std::string content_type_storage)
    : content_type(std::move(content_type_storage)), sink_(sink) {
  content_type.clear();
  this->header_limit(header_limit);
  this->body_limit(body_limit);
  this->eager(false);  // stop after the head; the caller switches to eager for the body
}

void ResponseParser::on_response_impl(int code, boost::beast::string_view, int,
                                      boost::beast::error_code&) {
  status = code;
}

void ResponseParser::on_field_impl(http::field name, boost::beast::string_view,
                                   boost::beast::string_view value, boost::beast::error_code&) {
  if (name == http::field::content_type) {
    content_type.assign(value.data(), value.size());
    std::string_view v(content_type);
    event_stream =
        EqualsIgnoreCase(v.substr(0, std::min<size_t>(v.size(), 17)), "text/event-stream");
  }
}

std::size_t ResponseParser::on_body_impl(boost::beast::string_view body,
                                         boost::beast::error_code&) {
  sink_->append(body.data(), body.size());
  return body.size();
}

std::size_t ResponseParser::on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                                               boost::beast::error_code&) {
  sink_->append(body.data(), body.size());
  return body.size();
}

}  // namespace tokenway
