#include "support/scripted_upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tokenway::testing {

namespace {

constexpr char kJsonBody[] =
    "{\"id\":\"c\",\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{\"index\":0,"
    "\"message\":{\"role\":\"assistant\",\"content\":\"hi there\"},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}";

void NoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

bool ReadHttpMessage(int fd, std::string& buf, std::string& head, std::string& body) {
  for (;;) {
    size_t head_end = buf.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      std::string_view h(buf.data(), head_end);
      size_t pos = head_end + 4;
      size_t cl = h.find("Content-Length: ");
      if (cl != std::string_view::npos) {
        size_t n = std::strtoul(h.data() + cl + 16, nullptr, 10);
        if (buf.size() >= pos + n) {
          head.assign(h);
          body.assign(buf, pos, n);
          buf.erase(0, pos + n);
          return true;
        }
      } else if (h.find("chunked") != std::string_view::npos) {
        // De-chunk what is there; complete once the last chunk has arrived.
        std::string out;
        size_t p = pos;
        bool complete = false;
        for (;;) {
          size_t eol = buf.find("\r\n", p);
          if (eol == std::string::npos) break;
          size_t size = std::strtoul(buf.c_str() + p, nullptr, 16);
          if (buf.size() < eol + 2 + size + 2) break;
          if (size == 0) {
            p = eol + 4;
            complete = true;
            break;
          }
          out.append(buf, eol + 2, size);
          p = eol + 2 + size + 2;
        }
        if (complete) {
          head.assign(h);
          body = std::move(out);
          buf.erase(0, p);
          return true;
        }
      } else {
        head.assign(h);
        body.clear();
        buf.erase(0, pos);
        return true;
      }
    }
    char tmp[16384];
    ssize_t n = ::read(fd, tmp, sizeof tmp);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
  }
}

ScriptedUpstream::ScriptedUpstream(int stream_events, void (*on_thread_start)())
    : on_thread_start_(on_thread_start) {
  json_response_ = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                   std::to_string(sizeof kJsonBody - 1) + "\r\n\r\n" + kJsonBody;
  std::string events;
  for (int i = 0; i < stream_events; ++i) {
    events +=
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":"
        "[{\"index\":0,\"delta\":{\"content\":\" w" +
        std::to_string(i) + "\"},\"finish_reason\":null}]}\n\n";
  }
  events += "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":"
            "[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":" +
            std::to_string(stream_events) + ",\"total_tokens\":" +
            std::to_string(5 + stream_events) + "}}\n\ndata: [DONE]\n\n";
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", events.size());
  sse_response_ = std::string(
                      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n") +
                  size + events + "\r\n0\r\n\r\n";

  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(listen_fd_, 64);
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

ScriptedUpstream::~ScriptedUpstream() {
  stop_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  ::close(listen_fd_);
  acceptor_.join();
  {
    std::lock_guard lock(mu_);
    for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : threads_) t.join();
}

std::string ScriptedUpstream::last_body() const {
  std::lock_guard lock(mu_);
  return last_body_;
}

void ScriptedUpstream::AcceptLoop() {
  if (on_thread_start_) on_thread_start_();
  while (!stop_.load()) {
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) break;
    std::lock_guard lock(mu_);
    conns_.push_back(fd);
    threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void ScriptedUpstream::Serve(int fd) {
  if (on_thread_start_) on_thread_start_();
  NoDelay(fd);
  std::string buf, head, body;
  buf.reserve(1 << 16);
  head.reserve(4096);
  body.reserve(1 << 16);
  while (ReadHttpMessage(fd, buf, head, body)) {
    requests_.fetch_add(1);
    const bool stream = body.find("\"stream\":true") != std::string::npos;
    {
      std::lock_guard lock(mu_);
      if (last_body_.capacity() < body.size()) last_body_.reserve(body.size() * 2);
      last_body_.assign(body);
    }
    const std::string& out = stream ? sse_response_ : json_response_;
    if (::write(fd, out.data(), out.size()) < 0) break;
  }
  ::close(fd);
}

RawClient::RawClient(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  NoDelay(fd_);
  buf_.reserve(1 << 16);
}

RawClient::~RawClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawClient::Exchange(const std::string& request, std::string& head, std::string& body) {
  if (fd_ < 0) return false;
  if (::write(fd_, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    return false;
  }
  return ReadHttpMessage(fd_, buf_, head, body);
}

std::string RawClient::Post(std::string_view path, std::string_view body) {
  std::string r = "POST ";
  r.append(path).append(" HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n");
  r.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
  r.append(body);
  return r;
}

}  // namespace tokenway::testing
