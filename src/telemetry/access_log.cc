#include "telemetry/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tokenway {

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
