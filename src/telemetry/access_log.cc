#include "telemetry/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tokenway {

namespace {

constexpr std::string_view kFieldNames[] = {"ts",
                                            "request_id",
                                            "tenant",
                                            "operation",
                                            "model",
                                            "pool",
                                            "endpoint",
                                            "status",
                                            "stream",
                                            "duration_ms",
                                            "ttft_ms",
                                            "prompt_tokens",
                                            "completion_tokens",
                                            "cached_tokens",
                                            "usage",
                                            "usage_injected",
                                            "stream_events",
                                            "retries",
                                            "priority",
                                            "queue_ms",
                                            "route",
                                            "request_bytes",
                                            "response_bytes",
                                            "prompt_hash",
                                            "error"};
static_assert(std::size(kFieldNames) == static_cast<size_t>(AccessLogField::kCount));

}  // namespace

std::string_view AccessLogFieldName(AccessLogField f) {
  return kFieldNames[static_cast<size_t>(f)];
}

bool ParseAccessLogField(std::string_view name, AccessLogField& out) {
  for (size_t i = 0; i < std::size(kFieldNames); ++i) {
    if (kFieldNames[i] == name) {
      out = static_cast<AccessLogField>(i);
      return true;
    }
  }
  return false;
}

std::shared_ptr<AccessLogSink> AccessLogSink::Open(const std::string& path, std::string& error) {
  if (path == "stdout" || path == "-") {
    return std::shared_ptr<AccessLogSink>(new AccessLogSink(STDOUT_FILENO, false));
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = path + ": " + std::strerror(errno);
    return nullptr;
  }
  return std::shared_ptr<AccessLogSink>(new AccessLogSink(fd, true));
}

AccessLogSink::~AccessLogSink() {
  if (owned_) ::close(fd_);
}

void AccessLogSink::Write(const std::string& lines) {
  std::lock_guard lock(mu_);
  const char* p = lines.data();
  size_t left = lines.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // a full disk or closed pipe must not take the gateway down
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace tokenway
