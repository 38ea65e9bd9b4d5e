// Every experiment file under bench/experiments/ loads, every configuration in it is a gateway
// configuration the gateway accepts, and every trace it replays exists and parses: the files
// recorded in docs/benchmarks.md must keep running as the configuration schema and the preset
// names change.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/experiment.h"
#include "bench/workload.h"
#include "control/config.h"

namespace tokenway::bench {
namespace {

std::vector<std::string> ExperimentFiles() {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(TOKENWAY_SOURCE_DIR) / "bench" / "experiments")) {
    if (entry.path().extension() == ".yaml") out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ExperimentFilesTest, EveryFileLoadsAndEveryConfigurationParses) {
  // Trace paths in the files are relative to the repository root, where the commands run.
  ASSERT_EQ(chdir(TOKENWAY_SOURCE_DIR), 0);
  const auto files = ExperimentFiles();
  ASSERT_FALSE(files.empty());
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    auto e = LoadExperiment(path);
    ASSERT_TRUE(e.ok()) << e.status().message();
    ASSERT_FALSE(e->configurations.empty());
    std::vector<std::string> urls;
    for (int64_t i = 0; i < std::min<int64_t>(e->fleet_count, 4); ++i) {
      urls.push_back("http://127.0.0.1:" + std::to_string(18000 + i));
    }
    for (const auto& c : e->configurations) {
      SCOPED_TRACE(c.name);
      if (c.config.empty() && c.policy == "oracle") continue;  // simulation only, by design
      auto config = ParseConfig(GatewayYaml(*e, c, urls), path + ": " + c.name);
      EXPECT_TRUE(config.ok()) << config.status().message();
    }
    if (e->workload.kind == "trace") {
      auto w = GenerateWorkload(e->workload, 1);
      ASSERT_TRUE(w.ok()) << w.status().message();
      EXPECT_EQ(w->size(), 1u);
    }
  }
}

}  // namespace
}  // namespace tokenway::bench
