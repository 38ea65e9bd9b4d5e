// Small helpers that unit tests of several folders share: a free loopback port, and promtool's
// verdict on a Prometheus text exposition.
#pragma once

#include <string>
#include <string_view>

namespace tokenway::testing {

// A loopback TCP port nothing listens on (bound once by the kernel's choice, then released).
int UnusedLoopbackPort();

// True when /usr/bin/promtool is installed (tests that need it skip otherwise).
bool HavePromtool();
// Runs `promtool check metrics` on `exposition`; returns its exit status (0: clean) and its
// output in `output`.
int PromtoolCheckMetrics(std::string_view exposition, std::string& output);

}  // namespace tokenway::testing
