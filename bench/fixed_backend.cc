// tokenway-fixed-backend: a tiny, single-threaded, fixed-response HTTP/1.1 model-server stand-in
// for the overhead benchmark (bench/overhead.sh). It must cost far less CPU than any proxy in
// front of it, so it is plain epoll with prebuilt response bytes and no allocation per request.
//
//   POST <any path>  body without "stream":true -> a fixed chat.completion JSON with usage
//                    (Content-Length, keep-alive).
//                    body with "stream":true     -> text/event-stream, Transfer-Encoding: chunked,
//                    --events chat.completion.chunk events, one HTTP chunk and one send() per
//                    event, the first after --interval-ms and then every --interval-ms (0: as
//                    fast as the socket takes them, streams served round-robin). With
//                    "include_usage":true a final usage chunk (choices: []) precedes
//                    `data: [DONE]`.
//   GET /health      200 ok.
//   GET /metrics     a minimal vLLM Prometheus exposition of an idle engine (nothing waiting or
//                    running, KV cache 10 % used), so a gateway scraping engine metrics sees a
//                    valid, fresh, unsaturated endpoint.     Anything else: 404.
//
// Flags: --listen HOST:PORT (default 127.0.0.1:9000; repeatable: one process, one epoll loop,
//        serving every listed address, e.g. 127.0.0.1..127.0.0.64 on one port as 64 endpoints),
//        --events N (100), --interval-ms MS (0), --model NAME (bench).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct ListenAddr {
  std::string host;
  int port = 0;
};

struct Options {
  std::vector<ListenAddr> listen;  // empty: 127.0.0.1:9000
  int events = 100;
  int interval_ms = 0;
  std::string model = "bench";
};

// Prebuilt response bytes.
struct Canned {
  std::string completion;     // whole non-streaming response
  std::string stream_head;    // response head of a stream
  std::string first_event;    // chunk-framed event carrying the role
  std::string event;          // chunk-framed content event
  std::string first_event_u;  // the same with "usage":null (include_usage requested)
  std::string event_u;
  std::string last_event;  // finish_reason "stop"
  std::string last_event_u;
  std::string usage_event;  // choices: [], usage
  std::string done_event;   // data: [DONE] + terminating chunk
  std::string health;
  std::string metrics;
  std::string not_found;
};

std::string Chunk(const std::string& payload) {
  char size[32];
  int n = snprintf(size, sizeof size, "%zx\r\n", payload.size());
  return std::string(size, n) + payload + "\r\n";
}

Canned BuildCanned(const Options& o) {
  Canned c;
  const std::string m = o.model;
  std::string body =
      "{\"id\":\"chatcmpl-bench0001\",\"object\":\"chat.completion\",\"created\":1700000000,"
      "\"model\":\"" +
      m +
      "\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
      "\"content\":\"This is a fixed answer from the benchmark backend. It has about forty "
      "tokens so that the response resembles a short real completion.\"},\"logprobs\":null,"
      "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":52,\"completion_tokens\":40,"
      "\"total_tokens\":92}}";
  c.completion = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body;
  c.stream_head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  const std::string pre =
      "data: {\"id\":\"chatcmpl-bench0001\",\"object\":\"chat.completion.chunk\","
      "\"created\":1700000000,\"model\":\"" +
      m + "\",\"choices\":[{\"index\":0,\"delta\":";
  auto ev = [&](const std::string& delta, const char* finish, bool usage_null) {
    return Chunk(pre + delta + ",\"logprobs\":null,\"finish_reason\":" + finish + "}]" +
                 (usage_null ? ",\"usage\":null" : "") + "}\n\n");
  };
  c.first_event = ev("{\"role\":\"assistant\",\"content\":\"\"}", "null", false);
  c.first_event_u = ev("{\"role\":\"assistant\",\"content\":\"\"}", "null", true);
  c.event = ev("{\"content\":\" token\"}", "null", false);
  c.event_u = ev("{\"content\":\" token\"}", "null", true);
  c.last_event = ev("{}", "\"stop\"", false);
  c.last_event_u = ev("{}", "\"stop\"", true);
  c.usage_event = Chunk(
      "data: {\"id\":\"chatcmpl-bench0001\",\"object\":\"chat.completion.chunk\","
      "\"created\":1700000000,\"model\":\"" +
      m +
      "\",\"choices\":[],\"usage\":{"
      "\"prompt_tokens\":52,\"completion_tokens\":" +
      std::to_string(o.events) + ",\"total_tokens\":" + std::to_string(52 + o.events) + "}}\n\n");
  c.done_event = Chunk("data: [DONE]\n\n") + "0\r\n\r\n";
  c.health = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
  const std::string exposition =
      "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
      "# TYPE vllm:num_requests_running gauge\n"
      "vllm:num_requests_running{model_name=\"" +
      m +
      "\"} 0.0\n"
      "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
      "# TYPE vllm:num_requests_waiting gauge\n"
      "vllm:num_requests_waiting{model_name=\"" +
      m +
      "\"} 0.0\n"
      "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
      "# TYPE vllm:kv_cache_usage_perc gauge\n"
      "vllm:kv_cache_usage_perc{model_name=\"" +
      m +
      "\"} 0.1\n"
      "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
      "# TYPE vllm:cache_config_info gauge\n"
      "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\"} 1.0\n";
  c.metrics =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
      "Content-Length: " +
      std::to_string(exposition.size()) + "\r\n\r\n" + exposition;
  c.not_found =
      "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n";
  return c;
}

struct Conn {
  int fd = -1;
  bool listener = false;  // a listening socket: readable means connections to accept
  std::string in;
  size_t in_pos = 0;  // start of the unparsed bytes in `in`
  std::string out;
  size_t out_pos = 0;
  bool want_out = false;  // EPOLLOUT registered
  bool close_after = false;
  // Stream state.
  bool streaming = false;
  bool usage = false;
  int sent = 0;  // events sent so far (content events, then usage, then DONE)
  int64_t due_ns = 0;
  bool active_listed = false;
};

Options g_opt;
Canned g_can;
int g_ep = -1;
int g_timer = -1;
std::vector<Conn*> g_conns;   // by fd
std::vector<Conn*> g_active;  // connections with a stream in progress

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// True when `json` has "key" : true (whitespace tolerant, not a JSON parser).
bool HasTrue(std::string_view json, std::string_view quoted_key) {
  size_t pos = 0;
  while ((pos = json.find(quoted_key, pos)) != std::string_view::npos) {
    size_t i = pos + quoted_key.size();
    while (i < json.size() &&
           (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r'))
      ++i;
    if (i < json.size() && json[i] == ':') {
      ++i;
      while (i < json.size() &&
             (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r'))
        ++i;
      if (json.substr(i, 4) == "true") return true;
    }
    pos = i;
  }
  return false;
}

void CloseConn(Conn* c) {
  epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, nullptr);
  close(c->fd);
  g_conns[c->fd] = nullptr;
  c->fd = -1;
  if (!c->active_listed) delete c;
  // else: removed and deleted by the stream loop.
}

void SetWantOut(Conn* c, bool want) {
  if (c->want_out == want) return;
  c->want_out = want;
  epoll_event ev{};
  ev.events = EPOLLIN | (want ? uint32_t(EPOLLOUT) : 0u);
  ev.data.ptr = c;
  epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
}

// Returns false when the connection died.
bool Flush(Conn* c) {
  while (c->out_pos < c->out.size()) {
    ssize_t n = send(c->fd, c->out.data() + c->out_pos, c->out.size() - c->out_pos, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_pos += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      SetWantOut(c, true);
      return true;
    }
    return false;
  }
  c->out.clear();
  c->out_pos = 0;
  SetWantOut(c, false);
  if (c->close_after && !c->streaming) return false;
  return true;
}

// Parses and answers as many complete requests as are buffered (stops at a stream, which must
// end before the next request is looked at). Returns false on a protocol error.
bool Process(Conn* c) {
  while (!c->streaming) {
    std::string_view buf(c->in.data() + c->in_pos, c->in.size() - c->in_pos);
    size_t head_end = buf.find("\r\n\r\n");
    if (head_end == std::string_view::npos) {
      if (buf.size() > 64 * 1024) return false;
      break;
    }
    std::string_view head = buf.substr(0, head_end + 2);
    size_t line_end = head.find("\r\n");
    std::string_view line = head.substr(0, line_end);
    size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return false;
    std::string_view method = line.substr(0, sp1);
    size_t sp2 = line.find(' ', sp1 + 1);
    std::string_view target = line.substr(
        sp1 + 1, sp2 == std::string_view::npos ? std::string_view::npos : sp2 - sp1 - 1);
    uint64_t content_length = 0;
    bool chunked = false, close = false;
    size_t p = line_end + 2;
    while (p < head.size()) {
      size_t e = head.find("\r\n", p);
      std::string_view h = head.substr(p, e - p);
      p = e + 2;
      size_t colon = h.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view name = h.substr(0, colon);
      std::string_view value = Trim(h.substr(colon + 1));
      if (IEquals(name, "content-length")) {
        content_length = strtoull(std::string(value).c_str(), nullptr, 10);
      } else if (IEquals(name, "transfer-encoding")) {
        chunked = value.find("chunked") != std::string_view::npos;
      } else if (IEquals(name, "connection")) {
        close = IEquals(value, "close");
      }
    }
    size_t body_start = head_end + 4;
    std::string body_storage;
    std::string_view body;
    size_t consumed;
    if (chunked) {  // rare (the proxies here send Content-Length); decode into a copy
      size_t q = body_start;
      bool complete = false;
      for (;;) {
        size_t e = buf.find("\r\n", q);
        if (e == std::string_view::npos) break;
        size_t size = strtoull(std::string(buf.substr(q, e - q)).c_str(), nullptr, 16);
        if (size == 0) {
          size_t end = buf.find("\r\n\r\n", e);  // trailers end
          if (buf.substr(e, 4) == "\r\n\r\n") end = e;
          if (end == std::string_view::npos) break;
          consumed = end + 4;
          complete = true;
          break;
        }
        if (e + 2 + size + 2 > buf.size()) break;
        body_storage.append(buf.substr(e + 2, size));
        q = e + 2 + size + 2;
      }
      if (!complete) break;
      body = body_storage;
    } else {
      if (buf.size() - body_start < content_length) break;
      body = buf.substr(body_start, content_length);
      consumed = body_start + content_length;
    }
    c->in_pos += consumed;
    if (close) c->close_after = true;

    if (method == "POST") {
      if (HasTrue(body, "\"stream\"")) {
        c->streaming = true;
        c->usage = HasTrue(body, "\"include_usage\"");
        c->sent = 0;
        c->out.append(g_can.stream_head);
        c->due_ns = NowNs() + int64_t(g_opt.interval_ms) * 1'000'000;
        if (!c->active_listed) {
          c->active_listed = true;
          g_active.push_back(c);
        }
      } else {
        c->out.append(g_can.completion);
      }
    } else if (method == "GET" && (target == "/health" || target == "/healthz")) {
      c->out.append(g_can.health);
    } else if (method == "GET" && target == "/metrics") {
      c->out.append(g_can.metrics);
    } else {
      c->out.append(g_can.not_found);
    }
  }
  if (c->in_pos == c->in.size()) {
    c->in.clear();
    c->in_pos = 0;
  } else if (c->in_pos > 256 * 1024) {
    c->in.erase(0, c->in_pos);
    c->in_pos = 0;
  }
  return true;
}

// Appends the next event of c's stream; returns true when the stream is complete.
bool AppendNextEvent(Conn* c) {
  const int n = g_opt.events;
  if (c->sent < n) {
    if (c->sent == 0) {
      c->out.append(c->usage ? g_can.first_event_u : g_can.first_event);
    } else if (c->sent == n - 1) {
      c->out.append(c->usage ? g_can.last_event_u : g_can.last_event);
    } else {
      c->out.append(c->usage ? g_can.event_u : g_can.event);
    }
    ++c->sent;
    return false;
  }
  if (c->usage && c->sent == n) {
    c->out.append(g_can.usage_event);
    ++c->sent;
    return false;
  }
  c->out.append(g_can.done_event);
  return true;
}

void OnReadable(Conn* c) {
  for (;;) {
    size_t old = c->in.size();
    c->in.resize(old + 65536);
    ssize_t n = recv(c->fd, c->in.data() + old, 65536, 0);
    if (n > 0) {
      c->in.resize(old + size_t(n));
      if (size_t(n) < 65536) break;
      continue;
    }
    c->in.resize(old);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    CloseConn(c);  // EOF or error
    return;
  }
  if (!Process(c)) {
    CloseConn(c);
    return;
  }
  // Unpaced streams get their first event in the stream pass; everything else goes now.
  if (c->streaming && g_opt.interval_ms == 0) return;
  if (!c->want_out && !Flush(c)) CloseConn(c);
}

void ArmTimer(int64_t due_ns) {
  itimerspec its{};
  if (due_ns > 0) {
    its.it_value.tv_sec = due_ns / 1'000'000'000;
    its.it_value.tv_nsec = due_ns % 1'000'000'000;
  }
  timerfd_settime(g_timer, TFD_TIMER_ABSTIME, &its, nullptr);
}

// One pass over the active streams: each due, writable stream gets one event (one send()).
// Returns the earliest due time of a paced stream still waiting, or 0; sets `busy` when some
// unpaced stream can go on immediately.
int64_t StreamPass(bool& busy) {
  busy = false;
  int64_t next_due = 0;
  const int64_t now = NowNs();
  size_t keep = 0;
  for (size_t i = 0; i < g_active.size(); ++i) {
    Conn* c = g_active[i];
    if (c->fd < 0) {  // closed meanwhile
      delete c;
      continue;
    }
    if (!c->streaming) {
      c->active_listed = false;
      continue;
    }
    bool alive = true;
    if (!c->want_out && c->due_ns <= now) {
      bool done = AppendNextEvent(c);
      if (done) c->streaming = false;
      c->due_ns = now + int64_t(g_opt.interval_ms) * 1'000'000;
      alive = Flush(c);
      if (alive && done) {
        // The next pipelined request, if any.
        alive = Process(c) && (c->want_out || Flush(c));
      }
    }
    if (!alive) {
      CloseConn(c);  // still listed, so not deleted there
      delete c;
      continue;
    }
    if (!c->streaming) {
      c->active_listed = false;
      continue;
    }
    g_active[keep++] = c;
    if (!c->want_out) {
      if (g_opt.interval_ms == 0) {
        busy = true;
      } else if (next_due == 0 || c->due_ns < next_due) {
        next_due = c->due_ns;
      }
    }
  }
  g_active.resize(keep);
  return next_due;
}

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s needs a value\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--listen") {
      std::string v = val();
      size_t colon = v.rfind(':');
      if (colon == std::string::npos) return false;
      ListenAddr l{v.substr(0, colon), atoi(v.c_str() + colon + 1)};
      if (l.port <= 0 || l.port > 65535) return false;
      o.listen.push_back(l);
    } else if (a == "--events") {
      o.events = atoi(val().c_str());
    } else if (a == "--interval-ms") {
      o.interval_ms = atoi(val().c_str());
    } else if (a == "--model") {
      o.model = val();
    } else {
      return false;
    }
  }
  if (o.listen.empty()) o.listen.push_back({"127.0.0.1", 9000});
  return o.events >= 1 && o.interval_ms >= 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (!ParseArgs(argc, argv, g_opt)) {
    fprintf(stderr,
            "usage: %s [--listen HOST:PORT]... [--events N] [--interval-ms MS] [--model NAME]\n",
            argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // precise pacing
  g_can = BuildCanned(g_opt);

  int one = 1;
  g_ep = epoll_create1(EPOLL_CLOEXEC);
  for (const ListenAddr& l : g_opt.listen) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(l.port));
    if (inet_pton(AF_INET, l.host.c_str(), &addr.sin_addr) != 1) {
      fprintf(stderr, "bad host %s\n", l.host.c_str());
      return 2;
    }
    if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(lfd, 1024) != 0) {
      fprintf(stderr, "cannot listen on %s:%d: %s\n", l.host.c_str(), l.port, strerror(errno));
      return 1;
    }
    Conn* lc = new Conn;
    lc->fd = lfd;
    lc->listener = true;
    epoll_event lev{};
    lev.events = EPOLLIN;
    lev.data.ptr = lc;
    epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &lev);
  }
  g_timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  epoll_event tev{};
  tev.events = EPOLLIN;
  tev.data.ptr = &g_timer;
  epoll_ctl(g_ep, EPOLL_CTL_ADD, g_timer, &tev);
  fprintf(stderr, "tokenway-fixed-backend listening on %s:%d%s (events %d, interval %d ms)\n",
          g_opt.listen[0].host.c_str(), g_opt.listen[0].port,
          g_opt.listen.size() > 1
              ? (" and " + std::to_string(g_opt.listen.size() - 1) + " more addresses").c_str()
              : "",
          g_opt.events, g_opt.interval_ms);

  std::vector<epoll_event> evs(256);
  bool busy = false;
  int64_t armed_due = 0;
  for (;;) {
    int n = epoll_wait(g_ep, evs.data(), int(evs.size()), busy ? 0 : -1);
    if (n < 0 && errno != EINTR) {
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      void* ptr = evs[i].data.ptr;
      if (ptr == &g_timer) {
        uint64_t expirations;
        [[maybe_unused]] ssize_t r = read(g_timer, &expirations, sizeof expirations);
        armed_due = 0;
        continue;
      }
      Conn* c = static_cast<Conn*>(ptr);
      if (c->listener) {  // accept all pending
        for (;;) {
          int fd = accept4(c->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (size_t(fd) >= g_conns.size()) g_conns.resize(size_t(fd) * 2 + 1, nullptr);
          Conn* nc = new Conn;
          nc->fd = fd;
          g_conns[size_t(fd)] = nc;
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.ptr = nc;
          epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      if (c->fd < 0) continue;
      if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        if (evs[i].events & EPOLLOUT) {
          if (!Flush(c)) {
            CloseConn(c);
            continue;
          }
          if (!c->streaming && !c->want_out) {
            // A finished stream may have left pipelined requests buffered.
            if (!Process(c) || (!c->want_out && !c->out.empty() && !Flush(c))) {
              CloseConn(c);
              continue;
            }
          }
        }
      }
      if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) OnReadable(c);
    }
    if (!g_active.empty()) {
      int64_t next_due = StreamPass(busy);
      if (next_due != 0 && next_due != armed_due) {
        ArmTimer(next_due);
        armed_due = next_due;
      }
    } else {
      busy = false;
    }
  }
}
