// RequestInspector and RewriteForUsage: what the request path reads from OpenAI request bodies.
#include "common/request_inspector.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

namespace tokenway {
namespace {

constexpr size_t kPadding = 64;

class InspectorTest : public ::testing::Test {
 protected:
  // Inspects `body` from a buffer padded like IoBuffer pads its readable region.
  bool Run(Operation op, std::string_view body) {
    buf_.assign(body);
    buf_.append(kPadding, '\0');
    return inspector_.Inspect(op, buf_.data(), body.size(), kPadding, req_, err_);
  }
  bool Chat(std::string_view body) { return Run(Operation::kChatCompletions, body); }

  // Expects a rejection with exactly this code and param.
  void ExpectError(Operation op, std::string_view body, std::string_view code,
                   std::string_view param) {
    SCOPED_TRACE(std::string(body.substr(0, 200)));
    ASSERT_FALSE(Run(op, body));
    EXPECT_EQ(err_.code, code) << err_.message;
    EXPECT_EQ(err_.param, param) << err_.message;
    EXPECT_FALSE(err_.message.empty());
  }

  RequestInspector inspector_;
  InspectedRequest req_;
  InspectError err_;
  std::string buf_;
};

TEST_F(InspectorTest, ChatHappyPath) {
  ASSERT_TRUE(Chat(R"({"model":"llama-3","stream":true,"stream_options":{"include_usage":true},
    "max_tokens":64,"user":"alice","messages":[{"role":"system","content":"Be brief."},
    {"role":"user","content":"Hi"}]})"))
      << err_.message;
  EXPECT_EQ(req_.operation, Operation::kChatCompletions);
  EXPECT_EQ(req_.model, "llama-3");
  EXPECT_TRUE(req_.stream);
  EXPECT_TRUE(req_.has_stream_options);
  EXPECT_TRUE(req_.include_usage);
  EXPECT_EQ(req_.max_tokens, 64);
  EXPECT_EQ(req_.user, "alice");
  EXPECT_EQ(req_.message_count, 2u);
  EXPECT_EQ(req_.prompt_text, "system: Be brief.\nuser: Hi\n");
}

TEST_F(InspectorTest, ChatDefaults) {
  ASSERT_TRUE(Chat(R"({"model":"m","messages":[]})")) << err_.message;
  EXPECT_FALSE(req_.stream);
  EXPECT_FALSE(req_.has_stream_options);
  EXPECT_FALSE(req_.include_usage);
  EXPECT_EQ(req_.max_tokens, -1);
  EXPECT_EQ(req_.user, "");
  EXPECT_EQ(req_.message_count, 0u);
  EXPECT_EQ(req_.prompt_text, "");
}

TEST_F(InspectorTest, NullOptionalFieldsAreAbsent) {
  ASSERT_TRUE(Chat(R"({"model":"m","stream":null,"stream_options":null,"max_tokens":null,
    "user":null,"messages":[{"role":"user","content":"x"}]})"))
      << err_.message;
  EXPECT_FALSE(req_.stream);
  EXPECT_FALSE(req_.has_stream_options);
  EXPECT_EQ(req_.max_tokens, -1);
  EXPECT_EQ(req_.user, "");
}

TEST_F(InspectorTest, MaxCompletionTokensTakesPrecedenceInEitherOrder) {
  ASSERT_TRUE(Chat(R"({"model":"m","max_tokens":10,"max_completion_tokens":20,"messages":[]})"));
  EXPECT_EQ(req_.max_tokens, 20);
  ASSERT_TRUE(Chat(R"({"model":"m","max_completion_tokens":20,"max_tokens":10,"messages":[]})"));
  EXPECT_EQ(req_.max_tokens, 20);
  ASSERT_TRUE(Chat(R"({"model":"m","max_tokens":10,"messages":[]})"));
  EXPECT_EQ(req_.max_tokens, 10);
  ASSERT_TRUE(Chat(R"({"model":"m","max_completion_tokens":0,"messages":[]})"));
  EXPECT_EQ(req_.max_tokens, 0);
  ASSERT_TRUE(Chat(R"({"model":"m","max_completion_tokens":null,"max_tokens":7,"messages":[]})"));
  EXPECT_EQ(req_.max_tokens, 7);
}

TEST_F(InspectorTest, IncludeUsageFalseAndOtherStreamOptionKeys) {
  ASSERT_TRUE(Chat(R"({"model":"m","stream":true,"stream_options":{"include_usage":false},
    "messages":[]})"));
  EXPECT_TRUE(req_.has_stream_options);
  EXPECT_FALSE(req_.include_usage);
  ASSERT_TRUE(Chat(R"({"model":"m","stream":true,"stream_options":{"continuous_usage_stats":true},
    "messages":[]})"));
  EXPECT_TRUE(req_.has_stream_options);
  EXPECT_FALSE(req_.include_usage);
}

TEST_F(InspectorTest, StreamOptionsOffsetPointsAtTheObject) {
  std::string body = R"({"model":"m","stream_options": {"include_usage":true} ,"messages":[]})";
  ASSERT_TRUE(Chat(body));
  ASSERT_TRUE(req_.has_stream_options);
  std::string_view so(body);
  so = so.substr(req_.stream_options_offset, req_.stream_options_length);
  EXPECT_EQ(so, R"({"include_usage":true})");
}

TEST_F(InspectorTest, ContentPartsAndNullContent) {
  ASSERT_TRUE(Chat(R"({"model":"m","messages":[
    {"role":"user","content":[{"type":"text","text":"Look at "},
                              {"type":"image_url","image_url":{"url":"http://x/y.png"}},
                              {"type":"text","text":"this."}]},
    {"role":"assistant","content":null,"tool_calls":[]},
    {"role":"user","content":[]},
    {"role":"tool","content":"42"}]})"))
      << err_.message;
  EXPECT_EQ(req_.message_count, 4u);
  EXPECT_EQ(req_.prompt_text, "user: Look at this.\nassistant: \nuser: \ntool: 42\n");
}

TEST_F(InspectorTest, MessageWithoutContentKey) {
  ASSERT_TRUE(Chat(R"({"model":"m","messages":[{"role":"assistant"}]})")) << err_.message;
  EXPECT_EQ(req_.prompt_text, "assistant: \n");
  EXPECT_EQ(req_.message_count, 1u);
}

TEST_F(InspectorTest, RoleAfterContent) {
  ASSERT_TRUE(Chat(R"({"model":"m","messages":[{"content":"hello","role":"user"}]})"));
  EXPECT_EQ(req_.prompt_text, "user: hello\n");
}

TEST_F(InspectorTest, EscapedStringsAreUnescaped) {
  ASSERT_TRUE(Chat(R"({"mod\u0065l":"a\"b\\c","user":"\u00e9t\u00e9",
    "messages":[{"role":"user","content":"line1\nline2\t\u20ac \ud83d\ude00"}]})"))
      << err_.message;
  EXPECT_EQ(req_.model, "a\"b\\c");
  EXPECT_EQ(req_.user, "\xC3\xA9t\xC3\xA9");
  EXPECT_EQ(req_.prompt_text, "user: line1\nline2\t\xE2\x82\xAC \xF0\x9F\x98\x80\n");
}

TEST_F(InspectorTest, CompletionsPromptStringAndArray) {
  ASSERT_TRUE(Run(Operation::kCompletions, R"({"model":"m","prompt":"Once upon","stream":true})"));
  EXPECT_EQ(req_.operation, Operation::kCompletions);
  EXPECT_EQ(req_.prompt_text, "Once upon");
  EXPECT_TRUE(req_.stream);
  EXPECT_EQ(req_.message_count, 0u);
  ASSERT_TRUE(Run(Operation::kCompletions, R"({"model":"m","prompt":["a","b","c"]})"));
  EXPECT_EQ(req_.prompt_text, "a\nb\nc");
  // Token arrays contribute no text.
  ASSERT_TRUE(Run(Operation::kCompletions, R"({"model":"m","prompt":[1,2,3]})"));
  EXPECT_EQ(req_.prompt_text, "");
  // "messages" means nothing to completions.
  ExpectError(Operation::kCompletions, R"({"model":"m","messages":[]})", "missing_required_field",
              "prompt");
}

TEST_F(InspectorTest, EmbeddingsInputAndNeverStream) {
  ASSERT_TRUE(Run(Operation::kEmbeddings, R"({"model":"e","input":["x","y"],"stream":true})"));
  EXPECT_EQ(req_.operation, Operation::kEmbeddings);
  EXPECT_EQ(req_.prompt_text, "x\ny");
  EXPECT_FALSE(req_.stream);
  ASSERT_TRUE(Run(Operation::kEmbeddings, R"({"model":"e","input":"one"})"));
  EXPECT_EQ(req_.prompt_text, "one");
  ExpectError(Operation::kEmbeddings, R"({"model":"e","prompt":"x"})", "missing_required_field",
              "input");
}

TEST_F(InspectorTest, ReusedRequestIsReset) {
  ASSERT_TRUE(Chat(R"({"model":"a","stream":true,"user":"u","max_tokens":3,
    "stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]})"));
  ASSERT_TRUE(Chat(R"({"model":"b","messages":[]})"));
  EXPECT_EQ(req_.model, "b");
  EXPECT_FALSE(req_.stream);
  EXPECT_FALSE(req_.include_usage);
  EXPECT_FALSE(req_.has_stream_options);
  EXPECT_EQ(req_.user, "");
  EXPECT_EQ(req_.max_tokens, -1);
  EXPECT_EQ(req_.prompt_text, "");
  EXPECT_EQ(req_.message_count, 0u);
}

TEST_F(InspectorTest, MalformedBodies) {
  const Operation chat = Operation::kChatCompletions;
  ExpectError(chat, "", "invalid_json", "");
  ExpectError(chat, "   ", "invalid_json", "");
  ExpectError(chat, "{", "invalid_json", "");
  ExpectError(chat, R"({"model":"m" "messages":[]})", "invalid_json", "");
  ExpectError(chat,
              R"({"model":"m","messages":[]})"
              "x",
              "invalid_json", "");
  ExpectError(chat, R"({"model":"m","messages":[]} {})", "invalid_json", "");
  ExpectError(chat, R"({"model":"m","messages":[]}])", "invalid_json", "");
  ExpectError(chat, R"([{"model":"m"}])", "invalid_json", "");
  ExpectError(chat, R"("just a string")", "invalid_json", "");
  ExpectError(chat, "42", "invalid_json", "");
  ExpectError(chat, "null", "invalid_json", "");
}

// simdjson on-demand validates structure lazily: a broken array may be reported as a wrong type,
// but it is always rejected.
TEST_F(InspectorTest, BrokenArrayIsRejected) {
  EXPECT_FALSE(Chat(R"({"model":"m","messages":[})"));
  EXPECT_FALSE(Chat(R"({"model":"m","messages":[{"role":"user","content":"x"})"));
  EXPECT_FALSE(Chat(R"({"model":"m","messages":[{"role":"user","content":"x"]})"));
}

TEST_F(InspectorTest, TrailingWhitespaceIsFine) {
  ASSERT_TRUE(Chat("  {\"model\":\"m\",\"messages\":[]}\r\n\t ")) << err_.message;
}

TEST_F(InspectorTest, NonUtf8IsRejected) {
  ExpectError(Operation::kChatCompletions,
              "{\"model\":\"m\xff\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
              "invalid_json", "");
  ExpectError(Operation::kChatCompletions,
              "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xC3\x28\"}]}",
              "invalid_json", "");
  EXPECT_NE(err_.message.find("UTF-8"), std::string::npos) << err_.message;
}

TEST_F(InspectorTest, WrongTypes) {
  const Operation chat = Operation::kChatCompletions;
  ExpectError(chat, R"({"model":1,"messages":[]})", "invalid_type", "model");
  ExpectError(chat, R"({"model":null,"messages":[]})", "invalid_type", "model");
  ExpectError(chat, R"({"model":"m","stream":"yes","messages":[]})", "invalid_type", "stream");
  ExpectError(chat, R"({"model":"m","stream":1,"messages":[]})", "invalid_type", "stream");
  ExpectError(chat, R"({"model":"m","max_tokens":"10","messages":[]})", "invalid_type",
              "max_tokens");
  ExpectError(chat, R"({"model":"m","max_tokens":1.5,"messages":[]})", "invalid_type",
              "max_tokens");
  ExpectError(chat, R"({"model":"m","max_completion_tokens":true,"messages":[]})", "invalid_type",
              "max_completion_tokens");
  ExpectError(chat, R"({"model":"m","messages":"hi"})", "invalid_type", "messages");
  ExpectError(chat, R"({"model":"m","messages":{}})", "invalid_type", "messages");
  ExpectError(chat, R"({"model":"m","messages":["hi"]})", "invalid_type", "messages");
  ExpectError(chat, R"({"model":"m","messages":[{"role":1,"content":"x"}]})", "invalid_type",
              "messages.role");
  ExpectError(chat, R"({"model":"m","messages":[{"role":"user","content":5}]})", "invalid_type",
              "messages.content");
  ExpectError(chat, R"({"model":"m","messages":[{"role":"user","content":["x"]}]})", "invalid_type",
              "messages");
  ExpectError(chat, R"({"model":"m","stream_options":true,"messages":[]})", "invalid_type",
              "stream_options");
  ExpectError(chat, R"({"model":"m","stream_options":{"include_usage":"yes"},"messages":[]})",
              "invalid_type", "stream_options.include_usage");
  ExpectError(chat, R"({"model":"m","user":5,"messages":[]})", "invalid_type", "user");
  ExpectError(Operation::kCompletions, R"({"model":"m","prompt":5})", "invalid_type", "prompt");
  ExpectError(Operation::kCompletions, R"({"model":"m","prompt":["a",{}]})", "invalid_type",
              "prompt");
  ExpectError(Operation::kEmbeddings, R"({"model":"m","input":{}})", "invalid_type", "input");
}

TEST_F(InspectorTest, NegativeMaxTokens) {
  ExpectError(Operation::kChatCompletions, R"({"model":"m","max_tokens":-1,"messages":[]})",
              "invalid_value", "max_tokens");
  ExpectError(Operation::kChatCompletions,
              R"({"model":"m","max_completion_tokens":-5,"messages":[]})", "invalid_value",
              "max_completion_tokens");
}

TEST_F(InspectorTest, MissingRequiredFields) {
  ExpectError(Operation::kChatCompletions, R"({"messages":[]})", "missing_required_field", "model");
  ExpectError(Operation::kChatCompletions, R"({"model":"m"})", "missing_required_field",
              "messages");
  ExpectError(Operation::kChatCompletions, R"({})", "missing_required_field", "model");
  ExpectError(Operation::kCompletions, R"({"model":"m"})", "missing_required_field", "prompt");
  ExpectError(Operation::kEmbeddings, R"({"model":"m"})", "missing_required_field", "input");
  ExpectError(Operation::kChatCompletions, R"({"model":"m","messages":[{"content":"x"}]})",
              "missing_required_field", "messages");
}

TEST_F(InspectorTest, OneMegabytePrompt) {
  std::string big(1 << 20, 'a');
  for (size_t i = 0; i < big.size(); i += 97) big[i] = ' ';
  std::string body = R"({"model":"m","messages":[{"role":"user","content":")" + big + R"("}]})";
  ASSERT_TRUE(Chat(body)) << err_.message;
  EXPECT_EQ(req_.prompt_text.size(), big.size() + 7);
  EXPECT_EQ(req_.prompt_text, "user: " + big + "\n");
}

// ---- RewriteForUsage ----------------------------------------------------------------------

// Parses `json` with the DOM API and returns stream_options.include_usage (or fails the test).
bool IncludeUsageOf(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  auto err = parser.parse(json).get(doc);
  EXPECT_EQ(err, simdjson::SUCCESS) << json;
  if (err) return false;
  // JSON parsers keep the last duplicate; walk the object to find it.
  bool value = false;
  simdjson::dom::object so;
  if (doc["stream_options"].get_object().get(so)) {
    ADD_FAILURE() << "no stream_options object in " << json;
    return false;
  }
  bool found = false;
  for (auto [k, v] : so) {
    if (k == "include_usage") {
      EXPECT_EQ(v.get_bool().get(value), simdjson::SUCCESS);
      found = true;
    }
  }
  EXPECT_TRUE(found) << json;
  return value;
}

class RewriteTest : public InspectorTest {
 protected:
  std::string Rewrite(std::string_view body) {
    EXPECT_TRUE(Chat(body)) << err_.message;
    std::string out;
    RewriteForUsage(body, req_, out);
    return out;
  }
};

TEST_F(RewriteTest, InsertsStreamOptionsAndKeepsEveryOtherByte) {
  std::string body =
      R"({ "model" : "m",  "stream":true, "messages":[{"role":"user","content":"{x}"}] })";
  std::string out = Rewrite(body);
  EXPECT_TRUE(IncludeUsageOf(out));
  // Removing the inserted text gives back the original bytes.
  std::string inserted = R"("stream_options":{"include_usage":true},)";
  size_t at = out.find(inserted);
  ASSERT_NE(at, std::string::npos) << out;
  std::string restored = out;
  restored.erase(at, inserted.size());
  EXPECT_EQ(restored, body);
  ASSERT_TRUE(Chat(out)) << err_.message << "\n" << out;
  EXPECT_TRUE(req_.include_usage);
  EXPECT_EQ(req_.prompt_text, "user: {x}\n");
}

TEST_F(RewriteTest, LeadingWhitespaceBeforeObject) {
  std::string out = Rewrite("\n  {\"model\":\"m\",\"stream\":true,\"messages\":[]}");
  EXPECT_TRUE(IncludeUsageOf(out));
  EXPECT_EQ(out.substr(0, 3), "\n  ");
}

TEST_F(RewriteTest, KeepsOtherStreamOptionKeys) {
  std::string body =
      R"({"model":"m","stream":true,"stream_options":{"continuous_usage_stats":true},"messages":[]})";
  std::string out = Rewrite(body);
  EXPECT_TRUE(IncludeUsageOf(out));
  EXPECT_EQ(
      out,
      R"({"model":"m","stream":true,"stream_options":{"continuous_usage_stats":true,"include_usage":true},"messages":[]})");
}

TEST_F(RewriteTest, OverridesIncludeUsageFalse) {
  std::string body =
      R"({"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[]})";
  std::string out = Rewrite(body);
  EXPECT_TRUE(IncludeUsageOf(out));
  ASSERT_TRUE(Chat(out)) << err_.message << "\n" << out;
  EXPECT_TRUE(req_.include_usage);
}

TEST_F(RewriteTest, EmptyStreamOptions) {
  std::string out = Rewrite(R"({"model":"m","stream":true,"stream_options":{ },"messages":[]})");
  EXPECT_EQ(
      out, R"({"model":"m","stream":true,"stream_options":{ "include_usage":true},"messages":[]})");
}

TEST_F(RewriteTest, NestedBracesInsideStreamOptions) {
  std::string out =
      Rewrite(R"({"model":"m","stream":true,"stream_options":{"x":{"y":"}"}},"messages":[]})");
  EXPECT_TRUE(IncludeUsageOf(out));
}

// Regression: an object with no members used to become `{"stream_options":{...},}`.
TEST(RewriteForUsageTest, EmptyObjectStaysValidJson) {
  for (std::string body : {std::string("{}"), std::string("{ }"), std::string(" {\n} ")}) {
    InspectedRequest req;  // as if inspected: no stream_options
    std::string out;
    RewriteForUsage(body, req, out);
    EXPECT_TRUE(IncludeUsageOf(out)) << out;
  }
}

// ---- ReplaceModel -------------------------------------------------------------------------

TEST_F(InspectorTest, ReplaceModelRewritesOnlyTheModelToken) {
  const std::string body =
      R"({"messages":[{"role":"user","content":"model"}], "model" : "al\"ias" , "n":1})";
  ASSERT_TRUE(Chat(body)) << err_.message;
  EXPECT_EQ(req_.model, "al\"ias");
  EXPECT_EQ(body.substr(req_.model_offset, req_.model_length), R"("al\"ias")");
  std::string out;
  ReplaceModel(body, req_, "llama-3/v2 \"b\"", out);
  EXPECT_EQ(
      out,
      R"({"messages":[{"role":"user","content":"model"}], "model" : "llama-3/v2 \"b\"" , "n":1})");
  // The rewritten body inspects to the new model, and rewriting is repeatable.
  std::string again;
  ASSERT_TRUE(Chat(out)) << err_.message;
  EXPECT_EQ(req_.model, "llama-3/v2 \"b\"");
  ReplaceModel(out, req_, "m", again);
  EXPECT_EQ(again, R"({"messages":[{"role":"user","content":"model"}], "model" : "m" , "n":1})");
}

}  // namespace
}  // namespace tokenway
