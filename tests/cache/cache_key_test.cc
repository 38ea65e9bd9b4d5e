#include "cache/cache_key.h"

#include <gtest/gtest.h>

#include <string>

namespace tokenway {
namespace {

class CacheKeyTest : public ::testing::Test {
 protected:
  CacheBypass Build(std::string body, CacheKey& key, std::string tenant = "acme",
                    std::string model = "m1", CacheRules rules = {},
                    Operation op = Operation::kChatCompletions) {
    body_ = std::move(body);
    CacheKeyInput in;
    in.tenant = tenant;
    in.model = model;
    in.operation = op;
    in.body = body_;
    in.padding = 0;
    return builder_.Build(in, rules, key);
  }
  CacheKey Key(std::string body, std::string tenant = "acme", std::string model = "m1") {
    CacheKey k;
    EXPECT_EQ(Build(std::move(body), k, tenant, model), CacheBypass::kNone);
    return k;
  }
  CacheKeyBuilder builder_;
  std::string body_;
};

TEST_F(CacheKeyTest, KeyOrderDoesNotMatterAtAnyDepth) {
  const CacheKey a =
      Key(R"({"model":"m1","temperature":0,"messages":[{"role":"user","content":"hi"}],)"
          R"("response_format":{"type":"json_schema","json_schema":{"b":1,"a":2}}})");
  const CacheKey b =
      Key(R"({"response_format":{"json_schema":{"a":2,"b":1},"type":"json_schema"},)"
          R"( "messages":[{"content":"hi","role":"user"}],"temperature":0.0,"model":"m1"})");
  EXPECT_EQ(a, b);
}

TEST_F(CacheKeyTest, IrrelevantTopLevelFieldsAreExcluded) {
  const CacheKey a = Key(R"({"model":"m1","temperature":0,"messages":[]})");
  const CacheKey b =
      Key(R"({"model":"m1","temperature":0,"messages":[],"stream":true,)"
          R"("stream_options":{"include_usage":true},"user":"u-17","metadata":{"run":"9"}})");
  EXPECT_EQ(a, b);
}

TEST_F(CacheKeyTest, ExcludedNamesCountBelowTheTopLevel) {
  const CacheKey a = Key(R"({"temperature":0,"messages":[{"role":"user","content":"x"}]})");
  const CacheKey b =
      Key(R"({"temperature":0,"messages":[{"role":"user","content":"x","user":"bob"}]})");
  EXPECT_NE(a, b);
}

TEST_F(CacheKeyTest, ContentTenantAndModelChangeTheKey) {
  const std::string body = R"({"temperature":0,"messages":[{"role":"user","content":"x"}]})";
  const CacheKey base = Key(body);
  EXPECT_NE(base, Key(R"({"temperature":0,"messages":[{"role":"user","content":"y"}]})"));
  EXPECT_NE(base, Key(body, "other-tenant"));
  EXPECT_NE(base, Key(body, "acme", "m1-v2"));
  EXPECT_NE(base,
            Key(R"({"temperature":0,"max_tokens":5,"messages":[{"role":"user","content":"x"}]})"));
}

TEST_F(CacheKeyTest, StringEscapesAreCanonical) {
  EXPECT_EQ(Key(R"({"temperature":0,"prompt":"caf\u00e9 \/"})"),
            Key(R"({"temperature":0,"prompt":"café /"})"));
}

TEST_F(CacheKeyTest, CanonicalTextIsSortedAndCompact) {
  CacheKey k;
  ASSERT_EQ(
      Build(R"({ "z" : [1, 2.5, true, null], "temperature" : 0, "a" : {"y":"q","b":{}} })", k),
      CacheBypass::kNone);
  const std::string_view c = builder_.canonical();
  const std::string_view json = c.substr(c.rfind('\0') + 1);
  EXPECT_EQ(json, R"({"a":{"b":{},"y":"q"},"temperature":0,"z":[1,2.5,true,null]})");
}

TEST_F(CacheKeyTest, OnlyDeterministicRequestsByDefault) {
  CacheKey k;
  EXPECT_EQ(Build(R"({"messages":[]})", k), CacheBypass::kNotDeterministic);
  EXPECT_EQ(Build(R"({"temperature":0.7,"messages":[]})", k), CacheBypass::kNotDeterministic);
  EXPECT_EQ(Build(R"({"temperature":0,"messages":[]})", k), CacheBypass::kNone);
  EXPECT_EQ(Build(R"({"temperature":0.9,"top_k":1,"messages":[]})", k), CacheBypass::kNone);
  CacheRules any;
  any.deterministic_only = false;
  EXPECT_EQ(Build(R"({"temperature":0.7,"messages":[]})", k, "acme", "m1", any),
            CacheBypass::kNone);
}

TEST_F(CacheKeyTest, MultipleChoicesToolsAndLogprobsBypass) {
  CacheKey k;
  EXPECT_EQ(Build(R"({"temperature":0,"n":2})", k), CacheBypass::kMultipleChoices);
  EXPECT_EQ(Build(R"({"temperature":0,"n":1})", k), CacheBypass::kNone);
  EXPECT_EQ(Build(R"({"temperature":0,"tools":[{"type":"function"}]})", k), CacheBypass::kTools);
  EXPECT_EQ(Build(R"({"temperature":0,"tools":[]})", k), CacheBypass::kNone);
  CacheRules tools;
  tools.allow_tools = true;
  EXPECT_EQ(Build(R"({"temperature":0,"tools":[{"type":"function"}]})", k, "acme", "m1", tools),
            CacheBypass::kNone);
  EXPECT_EQ(Build(R"({"temperature":0,"logprobs":true})", k), CacheBypass::kLogprobs);
  EXPECT_EQ(Build(R"({"temperature":0,"logprobs":false})", k), CacheBypass::kNone);
}

TEST_F(CacheKeyTest, BadBodiesAndEmbeddingsBypass) {
  CacheKey k;
  EXPECT_EQ(Build("[1,2]", k), CacheBypass::kNotJson);
  EXPECT_EQ(Build("{\"temperature\":0", k), CacheBypass::kNotJson);
  EXPECT_EQ(Build("", k), CacheBypass::kNotJson);
  EXPECT_EQ(Build(R"({"input":"x"})", k, "acme", "m1", {}, Operation::kEmbeddings),
            CacheBypass::kOperation);
}

TEST_F(CacheKeyTest, DeepNestingKeepsOuterMembers) {
  // More nested objects than members at the outer level: the outer list must survive the inner
  // ones growing.
  std::string deep = R"({"temperature":0,"b":)";
  for (int i = 0; i < 40; ++i) deep += R"({"k":1,"j":)";
  deep += "0";
  for (int i = 0; i < 40; ++i) deep += "}";
  deep += R"(,"a":1})";
  CacheKey k;
  ASSERT_EQ(Build(deep, k), CacheBypass::kNone);
  const std::string_view c = builder_.canonical();
  EXPECT_NE(c.find(R"({"a":1,"b":{"j":{"j":)"), std::string_view::npos);
  EXPECT_TRUE(c.ends_with(R"(,"temperature":0})")) << c;
}

}  // namespace
}  // namespace tokenway
