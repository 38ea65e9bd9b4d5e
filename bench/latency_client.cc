// tokenway-latency-client: one keep-alive connection, requests one after another, microsecond
// timings. Used by bench/overhead.sh for the added latency at one connection and the added
// first-event delay of paced streams.
//
//   --mode json    time from sending the request to the last byte of the response
//   --mode stream  time from sending the request to the first byte of the first `data:` event
//                  (the stream is then read to its end before the next request)
//
// Prints one JSON object: {"n":..,"min_us":..,"p50_us":..,"p90_us":..,"p99_us":..,"mean_us":..,
// "errors":..}.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int Connect(const std::string& host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool IEqualsPrefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if ((s[i] | 0x20) != (prefix[i] | 0x20)) return false;
  }
  return true;
}

// Reads one response. Sets first_event_ns when a `data:` line first appears in the body.
// Returns the HTTP status, or -1 on a connection error. `keep` says whether the connection
// stays usable.
int ReadResponse(int fd, std::string& buf, int64_t& first_event_ns, bool& keep) {
  first_event_ns = 0;
  keep = true;
  size_t head_end;
  char tmp[65536];
  auto fill = [&]() -> bool {
    ssize_t n = recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf.append(tmp, size_t(n));
    return true;
  };
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return -1;
  }
  std::string_view head(buf.data(), head_end + 2);
  int status = atoi(head.data() + 9);
  bool chunked = false;
  int64_t content_length = -1;
  size_t p = head.find("\r\n") + 2;
  while (p < head.size()) {
    size_t e = head.find("\r\n", p);
    std::string_view h = head.substr(p, e - p);
    p = e + 2;
    if (IEqualsPrefix(h, "content-length:"))
      content_length = atoll(std::string(h.substr(15)).c_str());
    if (IEqualsPrefix(h, "transfer-encoding:") && h.find("chunked") != std::string_view::npos)
      chunked = true;
    if (IEqualsPrefix(h, "connection:") && h.find("close") != std::string_view::npos) keep = false;
  }
  size_t pos = head_end + 4;
  auto check_event = [&](size_t from) {
    if (first_event_ns == 0 && buf.find("data:", from) != std::string::npos)
      first_event_ns = NowNs();
  };
  if (!chunked) {
    if (content_length < 0) {  // until EOF
      keep = false;
      check_event(pos);
      while (fill()) check_event(pos);
      buf.clear();
      return status;
    }
    while (buf.size() - pos < size_t(content_length)) {
      if (!fill()) return -1;
    }
    check_event(pos);
    buf.erase(0, pos + size_t(content_length));
    return status;
  }
  // Chunked: walk chunk by chunk; `pos` is at a chunk-size line.
  for (;;) {
    size_t e;
    while ((e = buf.find("\r\n", pos)) == std::string::npos) {
      if (!fill()) return -1;
    }
    size_t size = strtoull(buf.c_str() + pos, nullptr, 16);
    if (size == 0) {
      // Optional trailers, then an empty line.
      size_t end;
      while ((end = buf.find("\r\n\r\n", e)) == std::string::npos &&
             !(buf.size() >= e + 4 && buf.compare(e, 4, "\r\n\r\n") == 0)) {
        if (!fill()) return -1;
      }
      if (buf.compare(e, 4, "\r\n\r\n") == 0) end = e;
      buf.erase(0, end + 4);
      return status;
    }
    size_t data = e + 2;
    while (buf.size() < data + size + 2) {
      check_event(data);
      if (!fill()) return -1;
    }
    check_event(data);
    pos = data + size + 2;
  }
}

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  size_t i = size_t(q * double(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", path = "/v1/chat/completions", body_file, mode = "json";
  int port = 0, requests = 1000, warmup = 100;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      fprintf(stderr, "%s needs a value\n", a.c_str());
      return 2;
    }
    std::string v = argv[++i];
    if (a == "--connect") {
      size_t colon = v.rfind(':');
      host = v.substr(0, colon);
      port = atoi(v.c_str() + colon + 1);
    } else if (a == "--path") {
      path = v;
    } else if (a == "--body-file") {
      body_file = v;
    } else if (a == "--mode") {
      mode = v;
    } else if (a == "--requests") {
      requests = atoi(v.c_str());
    } else if (a == "--warmup") {
      warmup = atoi(v.c_str());
    } else {
      fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (port <= 0 || body_file.empty() || (mode != "json" && mode != "stream")) {
    fprintf(stderr,
            "usage: %s --connect HOST:PORT --body-file F [--mode json|stream] [--path P] "
            "[--requests N] [--warmup W]\n",
            argv[0]);
    return 2;
  }
  std::ifstream in(body_file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string body = ss.str();
  const std::string request =
      "POST " + path + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;

  int fd = -1;
  std::string buf;
  std::vector<double> samples;
  samples.reserve(size_t(requests));
  int errors = 0;
  for (int i = 0; i < warmup + requests; ++i) {
    if (fd < 0) {
      fd = Connect(host, port);
      buf.clear();
      if (fd < 0) {
        fprintf(stderr, "connect failed: %s\n", strerror(errno));
        return 1;
      }
    }
    int64_t t0 = NowNs();
    size_t off = 0;
    bool ok = true;
    while (off < request.size()) {
      ssize_t n = send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        ok = false;
        break;
      }
      off += size_t(n);
    }
    int64_t first_event = 0;
    bool keep = false;
    int status = ok ? ReadResponse(fd, buf, first_event, keep) : -1;
    int64_t t1 = NowNs();
    if (status != 200 || (mode == "stream" && first_event == 0)) {
      ++errors;
      if (errors > 20) {
        fprintf(stderr, "too many errors (last status %d)\n", status);
        return 1;
      }
    } else if (i >= warmup) {
      samples.push_back(double((mode == "stream" ? first_event : t1) - t0) / 1000.0);
    }
    if (!keep || status < 0) {
      close(fd);
      fd = -1;
    }
  }
  if (fd >= 0) close(fd);
  std::sort(samples.begin(), samples.end());
  double sum = 0;
  for (double s : samples) sum += s;
  printf(
      "{\"n\":%zu,\"min_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
      "\"mean_us\":%.1f,\"errors\":%d}\n",
      samples.size(), samples.empty() ? 0.0 : samples.front(), Percentile(samples, 0.5),
      Percentile(samples, 0.9), Percentile(samples, 0.99),
      samples.empty() ? 0.0 : sum / double(samples.size()), errors);
  return 0;
}
