#include "bench/metrics_scrape.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>

#include "bench/load_generator.h"
#include "routing/prometheus_parser.h"

namespace tokenway::bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

PrefixCacheCounters ParsePrefixCacheCounters(std::string_view text) {
  PrefixCacheCounters c;
  ParsePrometheusText(text, text.size(), [&](const PrometheusSample& sample) {
    if (sample.name == "vllm:prefix_cache_queries_total") c.queries += sample.value;
    if (sample.name == "vllm:prefix_cache_hits_total") c.hits += sample.value;
    if (sample.name == "tokenway_sim_lora_loads_total") c.lora_loads += sample.value;
  });
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
    total.lora_loads += c.lora_loads;
  }
  return total;
}

}  // namespace tokenway::bench
