// Fuzzes RequestParser the way ClientSession drives it: the head is parsed with put() over a
// growing contiguous buffer (in one piece, and in pieces of varying size), then a chunked body
// is fed eagerly from where the head ended. Every slice must lie inside the buffer, and the head
// must parse the same way however the bytes were split.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "../support/fuzz_split.h"
#include "http/request_parser.h"

namespace {

namespace http = boost::beast::http;

struct Result {
  bool head_done = false;
  bool body_done = false;
  std::string target;
  std::string chunked_body;
  size_t forward_headers = 0;
  size_t head_size = 0;
};

void CheckSlice(tokenway::Slice s, size_t size) {
  if (static_cast<size_t>(s.offset) + s.length > size) std::abort();
}

Result Run(const std::string& input, tokenway::fuzz::SplitRng* rng) {
  Result r;
  // A fresh copy per run, so slices can be checked against exactly this buffer.
  std::string buf = input;
  tokenway::RequestParser p(1024, 4096);
  size_t have = 0;
  boost::beast::error_code ec;
  size_t n = 0;  // bytes of the head consumed so far (Beast may take the request line early)
  for (;;) {
    have = rng ? std::min(buf.size(), have + rng->Piece(buf.size() - have)) : buf.size();
    p.set_base(buf.data(), buf.size());
    ec = {};
    n += p.put(boost::asio::buffer(buf.data() + n, have - n), ec);
    if (!ec && p.is_header_done()) break;
    if (ec == http::error::need_more && have > 1024) return r;  // the gateway's own limit
    if (ec && ec != http::error::need_more) return r;
    if (have == buf.size()) return r;
  }
  r.head_done = true;
  r.head_size = n;
  if (n > have) std::abort();
  CheckSlice(p.target, buf.size());
  CheckSlice(p.content_type, buf.size());
  CheckSlice(p.request_id, buf.size());
  CheckSlice(p.authorization, buf.size());
  for (const auto& h : p.forward_headers) {
    CheckSlice(h.name, buf.size());
    CheckSlice(h.value, buf.size());
  }
  r.target.assign(p.target.in(buf.data()));
  r.forward_headers = p.forward_headers.size();
  if (!p.chunked()) return r;
  p.eager(true);
  size_t consumed = n;
  while (!p.is_done()) {
    if (consumed < have) {
      ec = {};
      size_t m = p.put(boost::asio::buffer(buf.data() + consumed, have - consumed), ec);
      consumed += m;
      if (consumed > have) std::abort();
      if (ec && ec != http::error::need_more) return r;
      if (p.is_done()) break;
      if (!ec && m > 0) continue;
    }
    if (have == buf.size()) return r;
    have = rng ? std::min(buf.size(), have + rng->Piece(buf.size() - have)) : buf.size();
  }
  r.body_done = true;
  r.chunked_body = p.chunked_body;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  Result whole = Run(input, nullptr);
  tokenway::fuzz::SplitRng rng(data, size);
  Result split = Run(input, &rng);
  if (whole.head_done && split.head_done) {
    if (whole.target != split.target || whole.forward_headers != split.forward_headers ||
        whole.head_size != split.head_size) {
      std::abort();
    }
    if (whole.body_done && split.body_done && whole.chunked_body != split.chunked_body) {
      std::abort();
    }
  }
  return 0;
}
