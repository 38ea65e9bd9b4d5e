#include "common/log.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <mutex>
#include <string>

#include "common/json_writer.h"

namespace tokenway {
namespace {

void Write(std::string_view level, std::string_view message) {
  static std::mutex mu;
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::string line;
  JsonWriter(line)
      .BeginObject()
      .Key("ts")
      .String(ts)
      .Key("level")
      .String(level)
      .Key("msg")
      .String(message)
      .EndObject();
  line.push_back('\n');
  std::lock_guard lock(mu);
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace

void LogInfo(std::string_view message) {
  Write("info", message);
}
void LogWarn(std::string_view message) {
  Write("warn", message);
}
void LogError(std::string_view message) {
  Write("error", message);
}

}  // namespace tokenway
