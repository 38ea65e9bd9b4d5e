#include "cache/cache_config.h"

#include <gtest/gtest.h>

#include <string>

namespace tokenway {
namespace {

StatusOr<CacheConfig> Load(const std::string& yaml) {
  return LoadCacheConfig(YAML::Load(yaml), "gw.yaml");
}

TEST(CacheConfigTest, EmptySectionTurnsTheCacheOnWithDefaults) {
  auto c = Load("{}");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->enabled);
  EXPECT_EQ(c->backend, "memory");
  EXPECT_TRUE(c->deterministic_only);
  EXPECT_EQ(c->charge, CacheCharge::kInput);
  EXPECT_FALSE(c->semantic.enabled);
  EXPECT_FALSE(c->redis_enabled());
}

TEST(CacheConfigTest, EveryField) {
  auto c = Load(R"(
enabled: true
backend: redis
max_bytes: 1048576
max_entry_bytes: 4096
ttl: 30s
deterministic_only: false
allow_tools: true
charge: full
redis: {address: "10.0.0.1:6380", timeout: 5ms, key_prefix: "x:"}
semantic: {threshold: 0.95, dimension: 128, exact_below: 10, max_entries: 50}
)");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->redis_enabled());
  EXPECT_EQ(c->max_bytes, 1048576u);
  EXPECT_EQ(c->max_entry_bytes, 4096u);
  EXPECT_EQ(c->ttl, std::chrono::seconds(30));
  EXPECT_FALSE(c->deterministic_only);
  EXPECT_TRUE(c->allow_tools);
  EXPECT_EQ(c->charge, CacheCharge::kFull);
  EXPECT_EQ(c->redis.address, "10.0.0.1:6380");
  EXPECT_EQ(c->redis.timeout, std::chrono::milliseconds(5));
  EXPECT_TRUE(c->semantic.enabled);
  EXPECT_FLOAT_EQ(c->semantic.threshold, 0.95f);
  EXPECT_EQ(c->semantic.dimension, 128u);
}

TEST(CacheConfigTest, BadFieldsNameFileLineAndField) {
  const char* cases[][2] = {
      {"charge: some", "cache.charge"},
      {"backend: disk", "cache.backend"},
      {"semantic: {threshold: 1.5}", "cache.semantic.threshold"},
      {"semantic: {threshold: abc}", "cache.semantic.threshold"},
      {"max_bytes: 10", "cache.max_bytes"},
      {"max_bytes: 65536\nmax_entry_bytes: 8192", "cache.max_entry_bytes"},
      {"redis: {address: nohost}", "cache.redis.address"},
      {"ttl: soon", "cache.ttl"},
      {"colour: blue", "colour"},
  };
  for (const auto& [yaml, field] : cases) {
    auto c = Load(yaml);
    ASSERT_FALSE(c.ok()) << yaml;
    EXPECT_NE(c.status().message().find("gw.yaml:"), std::string::npos) << c.status().message();
    EXPECT_NE(c.status().message().find(field), std::string::npos) << c.status().message();
  }
}

}  // namespace
}  // namespace tokenway
