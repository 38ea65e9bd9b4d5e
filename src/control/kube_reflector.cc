#include "control/kube_reflector.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/log.h"

namespace tokenway {

namespace asio = boost::asio;

namespace {

constexpr uint64_t kListBodyLimit = 256ull << 20;
// A watch that ends this soon without delivering anything counts as a failure (back-off), so a
// server that closes every watch at once is not hammered.
constexpr int64_t kShortWatchNs = 1'000'000'000;

std::string UrlEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace

std::string_view DiscoveryErrorName(DiscoveryError e) {
  switch (e) {
    case DiscoveryError::kConnect:
      return "connect";
    case DiscoveryError::kUnauthorized:
      return "unauthorized";
    case DiscoveryError::kForbidden:
      return "forbidden";
    case DiscoveryError::kExpired:
      return "expired";
    case DiscoveryError::kHttpStatus:
      return "http_status";
    case DiscoveryError::kWatchIdle:
      return "watch_idle";
    case DiscoveryError::kWatchBroken:
      return "watch_broken";
    case DiscoveryError::kInvalidList:
      return "invalid_list";
    case DiscoveryError::kInvalidObject:
      return "invalid_object";
    case DiscoveryError::kInvalidAnnotation:
      return "invalid_annotation";
    case DiscoveryError::kNotFound:
      return "not_found";
    case DiscoveryError::kCount:
      break;
  }
  return "unknown";
}

KubeReflector::KubeReflector(asio::io_context& ioc, std::shared_ptr<KubeClient> client,
                             const KubernetesConfig& config, Resource resource,
                             DiscoveryCounters* counters, std::function<void()> on_change)
    : ioc_(ioc),
      client_(std::move(client)),
      config_(config),
      resource_(std::move(resource)),
      counters_(counters),
      on_change_(std::move(on_change)),
      backoff_timer_(ioc),
      cancel_(std::make_shared<WatchCancel>()),
      random_(std::random_device{}()) {}

void KubeReflector::Start() {
  asio::co_spawn(ioc_, Run(shared_from_this()), asio::detached);
}

void KubeReflector::Stop() {
  stopped_ = true;
  connected_ = false;
  backoff_timer_.cancel();
  cancel_->Cancel();
}

std::string KubeReflector::Target(std::string_view extra) const {
  std::string t = resource_.path + "?";
  t.append(extra);
  if (!resource_.label_selector.empty()) {
    t.append("&labelSelector=").append(UrlEncode(resource_.label_selector));
  }
  if (!resource_.field_selector.empty()) {
    t.append("&fieldSelector=").append(UrlEncode(resource_.field_selector));
  }
  return t;
}

void KubeReflector::Fail(DiscoveryError reason, const std::string& what, int status) {
  counters_->Count(reason);
  std::string where = resource_.resource + (resource_.namespace_name.empty()
                                                ? std::string(" in all namespaces")
                                                : " in namespace " + resource_.namespace_name);
  if (!resource_.label_selector.empty()) where += " (selector " + resource_.label_selector + ")";
  if (reason == DiscoveryError::kForbidden) {
    last_error_ = "forbidden: " + what + " " + where +
                  " (HTTP 403; the service account needs get, list and watch on " +
                  resource_.resource + ")";
    forbidden_ = true;
  } else {
    last_error_ = what + " " + where;
    if (status) last_error_ += " (HTTP " + std::to_string(status) + ")";
  }
  LogWarn("discovery: " + last_error_);
}

asio::awaitable<void> KubeReflector::Run(std::shared_ptr<KubeReflector> self) {
  bool need_list = true;
  std::string list_rv = "0";  // the first list may come from the watch cache
  uint32_t failures = 0;
  while (!self->stopped_) {
    if (need_list) {
      if (!co_await self->List(list_rv)) {
        if (self->stopped_) break;
        co_await self->Backoff(++failures);
        continue;
      }
      need_list = false;
    }
    int64_t started = MonotonicNanos();
    WatchEnd end = co_await self->WatchOnce();
    if (self->stopped_) break;
    if (end == WatchEnd::kRelist) {
      need_list = true;
      list_rv = "";  // after 410: a consistent read
      failures = 0;
      continue;
    }
    if (end == WatchEnd::kFailed || MonotonicNanos() - started < kShortWatchNs) {
      co_await self->Backoff(++failures);
    } else {
      failures = 0;
    }
  }
}

asio::awaitable<void> KubeReflector::Backoff(uint32_t failures) {
  double base = static_cast<double>(config_.backoff_initial.count());
  double cap = static_cast<double>(config_.backoff_max.count());
  double delay = base;
  for (uint32_t i = 1; i < failures && delay < cap; ++i) delay *= 2;
  if (delay > cap) delay = cap;
  // Full jitter in [delay/2, delay]: replicas restarting together do not retry in step.
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  delay *= jitter(random_);
  backoff_timer_.expires_after(std::chrono::nanoseconds(static_cast<int64_t>(delay)));
  co_await backoff_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<bool> KubeReflector::List(std::string rv_param) {
  std::map<std::string, KubeObject> fresh;
  std::string continue_token;
  std::string list_rv;
  for (int pages = 0;; ++pages) {
    std::string q = "limit=" + std::to_string(config_.page_size);
    if (!continue_token.empty()) {
      q += "&continue=" + UrlEncode(continue_token);
    } else if (!rv_param.empty()) {
      q += "&resourceVersion=" + UrlEncode(rv_param);
    }
    KubeClient::Response r = co_await client_->Get(Target(q), kListBodyLimit);
    if (stopped_) co_return false;
    if (r.status == 410 && !continue_token.empty()) {
      // The continue token expired mid-way: start the list again, consistently.
      counters_->Count(DiscoveryError::kExpired);
      fresh.clear();
      continue_token.clear();
      rv_param.clear();
      if (pages > 100) co_return false;
      continue;
    }
    if (r.status != 200) {
      if (r.status == 0) {
        Fail(DiscoveryError::kConnect, "cannot list (" + r.error + ")", 0);
      } else if (r.status == 401) {
        Fail(DiscoveryError::kUnauthorized, "unauthorized to list", 401);
      } else if (r.status == 403) {
        Fail(DiscoveryError::kForbidden, "list", 403);
      } else {
        KubeStatus st;
        std::string why = decoder_.ParseStatus(r.body, st) ? ": " + st.message : "";
        Fail(DiscoveryError::kHttpStatus, "cannot list" + why, r.status);
      }
      co_return false;
    }
    KubeListPage page;
    std::string error;
    if (!decoder_.ParseList(r.body, resource_.kind, page, error)) {
      Fail(DiscoveryError::kInvalidList, "invalid list answer (" + error + ") for", 0);
      co_return false;
    }
    if (!error.empty()) {
      counters_->Count(DiscoveryError::kInvalidObject);
      LogWarn("discovery: skipped an unusable " + resource_.resource + " object: " + error);
    }
    for (auto& [key, obj] : page.items) fresh[key] = std::move(obj);
    list_rv = page.resource_version;
    continue_token = page.continue_token;
    if (continue_token.empty()) break;
  }
  counters_->lists.fetch_add(1, std::memory_order_relaxed);
  bool changed = fresh != objects_ || !synced_;
  objects_ = std::move(fresh);
  resource_version_ = list_rv;
  synced_ = true;
  forbidden_ = false;
  last_error_.clear();
  last_contact_ns_ = MonotonicNanos();
  if (changed && !stopped_) on_change_();
  co_return true;
}

void KubeReflector::OnEvent(std::string_view json, bool& changed, bool& expired,
                            bool& error_event) {
  WatchEvent ev;
  std::string error;
  constexpr size_t kUnknown = DiscoveryCounters::kEventKinds - 1;
  if (!decoder_.ParseEvent(json, resource_.kind, ev, error)) {
    counters_->events[kUnknown][DiscoveryCounters::kMalformed].fetch_add(1);
    LogWarn("discovery: skipped a malformed " + resource_.resource + " watch event: " + error);
    return;
  }
  counters_->events[static_cast<size_t>(ev.type)][DiscoveryCounters::kApplied].fetch_add(1);
  switch (ev.type) {
    case WatchEventType::kAdded:
    case WatchEventType::kModified: {
      auto it = objects_.find(ev.key);
      if (it == objects_.end()) {
        objects_.emplace(std::move(ev.key), std::move(ev.object));
        changed = true;
      } else if (!(it->second == ev.object)) {
        it->second = std::move(ev.object);
        changed = true;
      }
      break;
    }
    case WatchEventType::kDeleted:
      changed = objects_.erase(ev.key) > 0 || changed;
      break;
    case WatchEventType::kBookmark:
      break;
    case WatchEventType::kError:
      error_event = true;
      if (ev.status.code == 410) {
        expired = true;
        counters_->Count(DiscoveryError::kExpired);
        LogInfo("discovery: " + resource_.resource + " watch expired (" + ev.status.message +
                "); listing again");
      } else {
        Fail(DiscoveryError::kHttpStatus, "watch error '" + ev.status.message + "' for",
             ev.status.code);
      }
      return;
  }
  resource_version_ = std::move(ev.resource_version);
}

asio::awaitable<KubeReflector::WatchEnd> KubeReflector::WatchOnce() {
  std::uniform_int_distribution<int> timeout(300, 600);
  std::string q =
      "watch=1&allowWatchBookmarks=true&resourceVersion=" + UrlEncode(resource_version_) +
      "&timeoutSeconds=" + std::to_string(timeout(random_));
  WatchStreamSplitter splitter(config_.max_event_bytes);
  bool expired = false;
  bool error_event = false;
  bool delivered = false;
  auto on_bytes = [&](std::string_view bytes) {
    connected_ = true;
    last_contact_ns_ = MonotonicNanos();
    if (bytes.empty()) return true;  // the server accepted the watch
    delivered = true;
    bool changed = false;
    constexpr size_t kUnknown = DiscoveryCounters::kEventKinds - 1;
    splitter.Feed(bytes, [&](WatchStreamSplitter::Piece piece, std::string_view value) {
      if (expired || error_event) return;
      if (piece == WatchStreamSplitter::Piece::kValue) {
        OnEvent(value, changed, expired, error_event);
      } else if (piece == WatchStreamSplitter::Piece::kMalformed) {
        counters_->events[kUnknown][DiscoveryCounters::kMalformed].fetch_add(1);
        LogWarn("discovery: skipped malformed text in the " + resource_.resource + " watch stream");
      } else {
        counters_->events[kUnknown][DiscoveryCounters::kOversized].fetch_add(1);
        LogWarn("discovery: skipped a " + resource_.resource + " watch event over " +
                std::to_string(config_.max_event_bytes) + " bytes (kubernetes.max_event_bytes)");
      }
    });
    if (changed && !stopped_) on_change_();
    return !expired && !error_event;
  };
  KubeClient::Response r =
      co_await client_->Watch(Target(q), config_.watch_idle_timeout, on_bytes, cancel_);
  bool was_connected = connected_;
  connected_ = false;
  if (was_connected) last_contact_ns_ = MonotonicNanos();
  if (stopped_) co_return WatchEnd::kFailed;
  if (expired) co_return WatchEnd::kRelist;
  if (error_event) co_return WatchEnd::kFailed;
  switch (r.status) {
    case 200:
      forbidden_ = false;
      last_error_.clear();
      if (r.timed_out) {
        counters_->Count(DiscoveryError::kWatchIdle);
        LogInfo("discovery: " + resource_.resource + " watch silent for " +
                FormatDuration(config_.watch_idle_timeout) + "; reconnecting");
        co_return WatchEnd::kReopen;
      }
      if (!r.error.empty()) {
        Fail(DiscoveryError::kWatchBroken, "watch broke (" + r.error + ") for", 0);
        co_return delivered ? WatchEnd::kReopen : WatchEnd::kFailed;
      }
      co_return WatchEnd::kReopen;  // the server ended the watch (timeoutSeconds)
    case 0:
      Fail(DiscoveryError::kConnect, "cannot watch (" + r.error + ")", 0);
      co_return WatchEnd::kFailed;
    case 401:
      Fail(DiscoveryError::kUnauthorized, "unauthorized to watch", 401);
      co_return WatchEnd::kFailed;
    case 403:
      Fail(DiscoveryError::kForbidden, "watch", 403);
      co_return WatchEnd::kFailed;
    case 410:
      counters_->Count(DiscoveryError::kExpired);
      LogInfo("discovery: " + resource_.resource + " watch answered 410 Gone; listing again");
      co_return WatchEnd::kRelist;
    default: {
      KubeStatus st;
      if (r.status == 504 && decoder_.ParseStatus(r.body, st) &&
          st.message.find("too large resource version") != std::string::npos) {
        counters_->Count(DiscoveryError::kExpired);
        co_return WatchEnd::kRelist;
      }
      Fail(DiscoveryError::kHttpStatus, "cannot watch", r.status);
      co_return WatchEnd::kFailed;
    }
  }
}

}  // namespace tokenway
