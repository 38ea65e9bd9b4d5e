// Operational log lines (start-up, reloads, health changes) on stderr as JSON, one per line.
// Not for per-request output: that is the access log.
#pragma once

#include <string_view>

namespace tokenway {

void LogInfo(std::string_view message);
void LogWarn(std::string_view message);
void LogError(std::string_view message);

}  // namespace tokenway
