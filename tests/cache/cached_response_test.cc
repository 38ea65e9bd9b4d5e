#include "cache/cached_response.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

namespace tokenway {
namespace {

std::vector<std::string> EventData(std::string_view stream) {
  std::vector<std::string> out;
  while (!stream.empty()) {
    const size_t end = stream.find("\n\n");
    EXPECT_NE(end, std::string_view::npos) << "event without its blank line";
    if (end == std::string_view::npos) break;
    std::string_view event = stream.substr(0, end);
    EXPECT_EQ(event.substr(0, 6), "data: ");
    out.emplace_back(event.substr(6));
    stream.remove_prefix(end + 2);
  }
  return out;
}

CachedResponse Answer(std::string content) {
  CachedResponse r;
  r.model = "m1";
  r.content = std::move(content);
  r.prompt_tokens = 12;
  r.completion_tokens = 5;
  r.generation_ns = 7'000'000;
  return r;
}

TEST(CachedResponseTest, JsonBodyIsAChatCompletionWithCachedTokens) {
  std::string out;
  RenderCachedJson(Answer("Hello \"world\""), "req1", 1700000000, out);
  simdjson::dom::parser p;
  simdjson::dom::element root = p.parse(out);
  EXPECT_EQ(std::string_view(root["object"]), "chat.completion");
  EXPECT_EQ(std::string_view(root["id"]), "chatcmpl-req1");
  EXPECT_EQ(std::string_view(root["choices"].at(0)["message"]["content"]), "Hello \"world\"");
  EXPECT_EQ(std::string_view(root["choices"].at(0)["finish_reason"]), "stop");
  EXPECT_EQ(int64_t(root["usage"]["prompt_tokens"]), 12);
  EXPECT_EQ(int64_t(root["usage"]["completion_tokens"]), 5);
  EXPECT_EQ(int64_t(root["usage"]["total_tokens"]), 17);
  EXPECT_EQ(int64_t(root["usage"]["prompt_tokens_details"]["cached_tokens"]), 12);
}

TEST(CachedResponseTest, StreamHasRoleContentFinishUsageAndDone) {
  // Long enough for several content chunks, with multi-byte characters at the cut points.
  std::string content;
  for (int i = 0; i < 400; ++i) content += "é€x";
  std::string out;
  RenderCachedStream(Answer(content), "req2", 1700000000, true, out);
  const auto events = EventData(out);
  ASSERT_GE(events.size(), 6u);
  EXPECT_EQ(events.back(), "[DONE]");
  simdjson::dom::parser p;
  std::string text;
  bool saw_finish = false, saw_usage = false;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    simdjson::dom::element e = p.parse(events[i]);
    EXPECT_EQ(std::string_view(e["object"]), "chat.completion.chunk");
    simdjson::dom::array choices = e["choices"];
    if (choices.size() == 0) {
      saw_usage = true;
      EXPECT_EQ(int64_t(e["usage"]["prompt_tokens_details"]["cached_tokens"]), 12);
      EXPECT_EQ(i, events.size() - 2) << "usage comes last, before [DONE]";
      continue;
    }
    simdjson::dom::element delta = choices.at(0)["delta"];
    if (i == 0) {
      EXPECT_EQ(std::string_view(delta["role"]), "assistant");
    }
    std::string_view piece;
    if (delta["content"].get(piece) == simdjson::SUCCESS) text.append(piece);
    std::string_view finish;
    if (choices.at(0)["finish_reason"].get(finish) == simdjson::SUCCESS) {
      EXPECT_EQ(finish, "stop");
      saw_finish = true;
    }
  }
  EXPECT_EQ(text, content);
  EXPECT_TRUE(saw_finish);
  EXPECT_TRUE(saw_usage);
}

TEST(CachedResponseTest, StreamWithoutUsageRequestHasNoUsageChunk) {
  std::string out;
  RenderCachedStream(Answer("short"), "r", 1, false, out);
  EXPECT_EQ(out.find("\"usage\""), std::string::npos);
  EXPECT_EQ(EventData(out).back(), "[DONE]");
}

TEST(CachedResponseTest, TextCompletionShapes) {
  CachedResponse r = Answer("abc");
  r.operation = Operation::kCompletions;
  std::string out;
  RenderCachedJson(r, "r", 1, out);
  simdjson::dom::parser p;
  simdjson::dom::element root = p.parse(out);
  EXPECT_EQ(std::string_view(root["object"]), "text_completion");
  EXPECT_EQ(std::string_view(root["choices"].at(0)["text"]), "abc");
}

TEST(ResponseReaderTest, AssemblesAStream) {
  ResponseReader reader;
  ResponseAssembly a;
  reader.ReadStreamEvent(
      R"({"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})",
      a);
  reader.ReadStreamEvent(R"({"choices":[{"index":0,"delta":{"content":"Hel"}}]})", a);
  reader.ReadStreamEvent(R"({"choices":[{"index":0,"delta":{"content":"lo"}}]})", a);
  EXPECT_FALSE(a.storable());
  reader.ReadStreamEvent(R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})", a);
  reader.ReadStreamEvent(R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}})", a);
  EXPECT_FALSE(a.storable()) << "not before [DONE]";
  reader.ReadStreamEvent("[DONE]", a);
  EXPECT_TRUE(a.storable());
  EXPECT_EQ(a.content, "Hello");
  EXPECT_EQ(a.model, "m1");
}

TEST(ResponseReaderTest, TruncatedFilteredToolAndMultiChoiceAnswersAreNotStorable) {
  ResponseReader reader;
  ResponseAssembly a;
  reader.ReadBody(
      R"({"model":"m","choices":[{"index":0,"message":{"content":"x"},"finish_reason":"length"}]})",
      a);
  EXPECT_FALSE(a.storable());
  a.Reset();
  reader.ReadBody(
      R"({"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"content_filter"}]})", a);
  EXPECT_FALSE(a.storable());
  a.Reset();
  reader.ReadBody(
      R"({"choices":[{"index":0,"message":{"content":null,"tool_calls":[{"id":"1"}]},"finish_reason":"stop"}]})",
      a);
  EXPECT_FALSE(a.storable());
  a.Reset();
  reader.ReadBody(
      R"({"choices":[{"index":0,"message":{"content":"a"},"finish_reason":"stop"},{"index":1,"message":{"content":"b"},"finish_reason":"stop"}]})",
      a);
  EXPECT_FALSE(a.storable());
  a.Reset();
  reader.ReadBody("not json", a);
  EXPECT_FALSE(a.storable());
  a.Reset();
  reader.ReadBody(
      R"({"choices":[{"index":0,"message":{"role":"assistant","content":"ok","tool_calls":[]},"finish_reason":"stop"}]})",
      a);
  EXPECT_TRUE(a.storable()) << "an empty tool_calls list is no tool call";
  EXPECT_EQ(a.content, "ok");
  a.Reset();
  reader.ReadStreamEvent(R"({"choices":[{"index":0,"delta":{"content":"x"}}]})", a);
  reader.ReadStreamEvent(R"({"error":{"message":"boom"}})", a);
  reader.ReadStreamEvent(R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})", a);
  reader.ReadStreamEvent("[DONE]", a);
  EXPECT_FALSE(a.storable());
}

TEST(CachedResponseTest, EncodeDecodeRoundTrip) {
  CachedResponse r = Answer("multi\nline \"quoted\" é");
  r.operation = Operation::kCompletions;
  CachedResponse back;
  ASSERT_TRUE(DecodeCachedResponse(EncodeCachedResponse(r), back));
  EXPECT_EQ(back.content, r.content);
  EXPECT_EQ(back.model, r.model);
  EXPECT_EQ(back.operation, Operation::kCompletions);
  EXPECT_EQ(back.prompt_tokens, 12);
  EXPECT_EQ(back.completion_tokens, 5);
  EXPECT_EQ(back.generation_ns, 7'000'000);
  EXPECT_FALSE(DecodeCachedResponse("{}", back));
  EXPECT_FALSE(DecodeCachedResponse("garbage", back));
}

}  // namespace
}  // namespace tokenway
