#include "gateway/route_embeddings.h"

#include <gtest/gtest.h>

namespace tokenway {
namespace {

TEST(RouteEmbeddingsTest, ParsesAnswersInIndexOrder) {
  simdjson::dom::parser parser;
  auto v = RouteEmbeddings::ParseEmbeddings(
      parser,
      R"({"object":"list","data":[{"index":1,"object":"embedding","embedding":[0.5,1]},)"
      R"({"index":0,"object":"embedding","embedding":[-1.25,2e-3]}],"usage":{"prompt_tokens":3}})",
      2);
  ASSERT_TRUE(v.ok()) << v.status().message();
  ASSERT_EQ(v->size(), 2u);
  EXPECT_FLOAT_EQ((*v)[0][0], -1.25f);
  EXPECT_FLOAT_EQ((*v)[0][1], 0.002f);
  EXPECT_FLOAT_EQ((*v)[1][0], 0.5f);
  EXPECT_FLOAT_EQ((*v)[1][1], 1.0f);
}

TEST(RouteEmbeddingsTest, MalformedAnswersAreErrors) {
  simdjson::dom::parser parser;
  const char* bad[] = {
      "not json",
      R"({"data":[]})",
      R"({"data":[{"index":0,"embedding":[1,2]}]})",  // one of two
      R"({"data":[{"index":0,"embedding":[1,2]},{"index":0,"embedding":[1,2]}]})",
      R"({"data":[{"index":0,"embedding":[1,2]},{"index":2,"embedding":[1,2]}]})",
      R"({"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1,2,3]}]})",
      R"({"data":[{"index":0,"embedding":[1,"x"]},{"index":1,"embedding":[1,2]}]})",
      R"({"data":[{"index":0,"embedding":"AAAA"},{"index":1,"embedding":[1,2]}]})",
      R"({"data":[{"index":0,"embedding":[]},{"index":1,"embedding":[]}]})",
  };
  for (const char* body : bad) {
    EXPECT_FALSE(RouteEmbeddings::ParseEmbeddings(parser, body, 2).ok()) << body;
  }
}

}  // namespace
}  // namespace tokenway
