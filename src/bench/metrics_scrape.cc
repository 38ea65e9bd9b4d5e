#include "bench/metrics_scrape.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdlib>

#include "bench/load_generator.h"

namespace tokenway::bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

PrefixCacheCounters ParsePrefixCacheCounters(std::string_view text) {
  PrefixCacheCounters c;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string_view::npos) continue;
    std::string_view name = line.substr(0, name_end);
    double* dst = nullptr;
    if (name == "vllm:prefix_cache_queries_total") dst = &c.queries;
    if (name == "vllm:prefix_cache_hits_total") dst = &c.hits;
    if (!dst) continue;
    // The value follows the last space after the labels (an optional timestamp is not written
    // by the engines this reads).
    size_t labels_end = line[name_end] == '{' ? line.find('}', name_end) : name_end;
    if (labels_end == std::string_view::npos) continue;
    std::string value(line.substr(labels_end + 1));
    *dst += std::strtod(value.c_str(), nullptr);
  }
  return c;
}

StatusOr<std::string> HttpGet(const std::string& url, double timeout_s) {
  auto target = ParseHttpUrl(url, "/metrics");
  if (!target.ok()) return target.status();
  asio::io_context io(1);
  tcp::socket sock(io);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(target->host, ec);
  if (ec) {
    tcp::resolver resolver(io);
    auto r = resolver.resolve(target->host, std::to_string(target->port), ec);
    if (ec || r.empty()) return Status::Error("cannot resolve " + target->host);
    addr = r.begin()->endpoint().address();
  }
  std::string request = "GET " + target->path + " HTTP/1.1\r\nHost: " + target->host +
                        "\r\nConnection: close\r\n\r\n";
  std::string response;
  boost::system::error_code result;
  asio::steady_timer timer(io);
  timer.expires_after(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  timer.async_wait([&](boost::system::error_code e) {
    if (!e) {
      result = asio::error::timed_out;
      sock.close();
    }
  });
  sock.async_connect(tcp::endpoint(addr, target->port), [&](boost::system::error_code e) {
    if (e) {
      if (!result) result = e;
      timer.cancel();
      return;
    }
    asio::async_write(sock, asio::buffer(request), [&](boost::system::error_code e2, size_t) {
      if (e2) {
        if (!result) result = e2;
        timer.cancel();
        return;
      }
      asio::async_read(sock, asio::dynamic_buffer(response),
                       [&](boost::system::error_code e3, size_t) {
                         if (e3 && e3 != asio::error::eof && !result) result = e3;
                         timer.cancel();
                       });
    });
  });
  io.run();
  if (result) return Status::Error("GET " + url + ": " + result.message());
  size_t head_end = response.find("\r\n\r\n");
  if (response.compare(0, 9, "HTTP/1.1 ") != 0 || head_end == std::string::npos) {
    return Status::Error("GET " + url + ": malformed response");
  }
  int status = std::atoi(response.c_str() + 9);
  if (status != 200) return Status::Error("GET " + url + ": HTTP " + std::to_string(status));
  std::string body = response.substr(head_end + 4);
  if (response.find("chunked") < head_end) {
    // De-chunk (small admin bodies only).
    std::string plain;
    size_t p = 0;
    while (p < body.size()) {
      size_t eol = body.find("\r\n", p);
      if (eol == std::string::npos) break;
      size_t n = std::strtoul(body.c_str() + p, nullptr, 16);
      if (n == 0) break;
      plain.append(body, eol + 2, n);
      p = eol + 2 + n + 2;
    }
    body = std::move(plain);
  }
  return body;
}

StatusOr<PrefixCacheCounters> ScrapePrefixCache(const std::vector<std::string>& urls) {
  PrefixCacheCounters total;
  for (const auto& url : urls) {
    auto body = HttpGet(url);
    if (!body.ok()) return body.status();
    PrefixCacheCounters c = ParsePrefixCacheCounters(*body);
    total.queries += c.queries;
    total.hits += c.hits;
  }
  return total;
}

}  // namespace tokenway::bench
