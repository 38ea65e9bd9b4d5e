// Fuzzes ResponseParser the way the proxy drives it: bytes arrive in pieces into a buffer, the
// head is parsed non-eagerly, then the body eagerly into a string; end of stream is delivered at
// the end. The de-framed body must not depend on how the bytes were split.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "../support/fuzz_split.h"
#include "http/response_parser.h"

namespace {

namespace http = boost::beast::http;

struct Result {
  bool done = false;
  bool failed = false;
  int status = 0;
  std::string body;
};

Result Run(const std::string& wire, tokenway::fuzz::SplitRng* rng) {
  Result r;
  tokenway::ResponseParser p(2048, 1 << 16, &r.body);
  std::string buf;
  size_t next = 0;
  for (;;) {
    size_t piece = rng ? rng->Piece(wire.size() - next) : wire.size() - next;
    buf.append(wire, next, piece);
    next += piece;
    while (!buf.empty()) {
      boost::beast::error_code ec;
      size_t n = p.put(boost::asio::buffer(buf.data(), buf.size()), ec);
      if (n > buf.size()) std::abort();
      buf.erase(0, n);
      if (ec == http::error::need_more) break;
      if (ec) {
        r.failed = true;
        return r;
      }
      if (p.is_header_done()) p.eager(true);
      if (p.is_done()) {
        r.done = true;
        r.status = p.status;
        return r;
      }
      if (n == 0) break;
    }
    if (next >= wire.size()) break;
  }
  if (p.is_header_done() || !buf.empty() || wire.empty()) {
    boost::beast::error_code ec;
    p.put_eof(ec);
    if (ec) {
      r.failed = true;
      return r;
    }
    r.done = p.is_done();
  }
  r.status = p.status;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string wire(reinterpret_cast<const char*>(data), size);
  Result whole = Run(wire, nullptr);
  tokenway::fuzz::SplitRng rng(data, size);
  Result split = Run(wire, &rng);
  if (whole.done && split.done && (whole.body != split.body || whole.status != split.status)) {
    std::abort();
  }
  return 0;
}
