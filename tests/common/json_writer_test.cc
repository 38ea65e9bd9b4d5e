// AppendJsonString / AppendJsonDouble / AppendJsonNumber, JsonWriter, and the OpenAI error body
// built on them.
#include "common/json_writer.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <limits>

#include "common/openai_error.h"

namespace tokenway {
namespace {

std::string Quote(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

// The string value `json` (a JSON string literal) decodes to, via simdjson's DOM parser.
std::string Decode(const std::string& json) {
  simdjson::dom::parser parser;
  std::string_view v;
  auto err = parser.parse(json).get_string().get(v);
  EXPECT_EQ(err, simdjson::SUCCESS) << json;
  return std::string(v);
}

TEST(JsonWriterTest, PlainAndEscapes) {
  EXPECT_EQ(Quote(""), "\"\"");
  EXPECT_EQ(Quote("abc"), "\"abc\"");
  EXPECT_EQ(Quote("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(Quote("\n\r\t"), R"("\n\r\t")");
  EXPECT_EQ(Quote("/"), "\"/\"");
}

TEST(JsonWriterTest, ControlCharacters) {
  EXPECT_EQ(Quote(std::string_view("\0", 1)), R"("\u0000")");
  EXPECT_EQ(Quote("\x01\x08\x0c\x1f"), R"("\u0001\u0008\u000c\u001f")");
  std::string all;
  for (int c = 0; c < 0x20; ++c) all.push_back(static_cast<char>(c));
  EXPECT_EQ(Decode(Quote(all)), all);
}

TEST(JsonWriterTest, ValidUtf8PassesThrough) {
  std::string s = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF";
  EXPECT_EQ(Quote(s), "\"" + s + "\"");
}

TEST(JsonWriterTest, InvalidUtf8BecomesReplacementCharacter) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(Quote("a\xFF"
                  "b"),
            "\"a" + fffd + "b\"");
  EXPECT_EQ(Quote("\xC3"), "\"" + fffd + "\"");                                   // truncated
  EXPECT_EQ(Quote("\xC0\xAF"), "\"" + fffd + fffd + "\"");                        // overlong
  EXPECT_EQ(Quote("\xED\xA0\x80"), "\"" + fffd + fffd + fffd + "\"");             // surrogate
  EXPECT_EQ(Quote("\xF4\x90\x80\x80"), "\"" + fffd + fffd + fffd + fffd + "\"");  // > U+10FFFF
  EXPECT_EQ(Quote("\x80"), "\"" + fffd + "\"");  // lone continuation
  // Whatever the bytes, the output is valid JSON.
  std::string junk;
  for (int c = 0; c < 256; ++c) junk.push_back(static_cast<char>(c));
  Decode(Quote(junk));
}

TEST(JsonWriterTest, Doubles) {
  std::string out;
  AppendJsonDouble(out, 1.5);
  EXPECT_EQ(out, "1.500");
  out.clear();
  AppendJsonDouble(out, 0.0004);
  EXPECT_EQ(out, "0.000");
  out.clear();
  AppendJsonDouble(out, std::numeric_limits<double>::infinity());
  EXPECT_EQ(out, "null");
  out.clear();
  AppendJsonDouble(out, std::nan(""));
  EXPECT_EQ(out, "null");
  out.clear();
  AppendJsonInt(out, -42);
  EXPECT_EQ(out, "-42");
}

TEST(OpenAiErrorTest, Shape) {
  std::string out;
  AppendOpenAiError(out, "bad \"model\"\n", "invalid_request_error", "model", "invalid_type");
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(out).get(doc), simdjson::SUCCESS) << out;
  simdjson::dom::object err;
  ASSERT_EQ(doc["error"].get_object().get(err), simdjson::SUCCESS);
  EXPECT_EQ(err.size(), 4u);
  EXPECT_EQ(std::string_view(err["message"]), "bad \"model\"\n");
  EXPECT_EQ(std::string_view(err["type"]), "invalid_request_error");
  EXPECT_EQ(std::string_view(err["param"]), "model");
  EXPECT_EQ(std::string_view(err["code"]), "invalid_type");
}

TEST(JsonWriterTest, NumbersRenderExactlyOrAsNull) {
  auto number = [](double v) {
    std::string out;
    AppendJsonNumber(out, v);
    return out;
  };
  EXPECT_EQ(number(1.0), "1");
  EXPECT_EQ(number(0.45), "0.45");
  EXPECT_EQ(number(0.8), "0.8");
  EXPECT_EQ(number(2500), "2500");
  EXPECT_EQ(number(-0.125), "-0.125");
  EXPECT_EQ(number(1e300), "1e+300");
  EXPECT_EQ(number(std::numeric_limits<double>::quiet_NaN()), "null");
  EXPECT_EQ(number(std::numeric_limits<double>::infinity()), "null");
  std::string f;
  AppendJsonNumber(f, 0.000237f);
  EXPECT_EQ(f, "0.000237");
  double third = 1.0 / 3.0;
  EXPECT_EQ(std::stod(number(third)), third);  // round-trips
}

TEST(JsonWriterTest, PlacesCommasAndColonsInNestedDocuments) {
  std::string out;
  JsonWriter w(out);
  w.BeginObject().Key("a").Int(-1).Key("b").BeginArray();
  w.EndArray().Key("c").BeginArray().Uint(18446744073709551615ull).String("x\"y").Null();
  w.BeginObject().EndObject().BeginObject().Key("d").Bool(true).Key("e").Bool(false).EndObject();
  w.EndArray().Key("f").Double(0.5).Key("g").Number(0.25).Key("h").Raw("{\"pre\":1}");
  w.EndObject();
  EXPECT_EQ(out, R"({"a":-1,"b":[],"c":[18446744073709551615,"x\"y",null,{},{"d":true,"e":false}],)"
                 R"("f":0.500,"g":0.25,"h":{"pre":1}})");
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  EXPECT_EQ(parser.parse(out).get(doc), simdjson::SUCCESS) << out;
}

TEST(JsonWriterTest, WritesAFragmentAfterAKeyWrittenByHand) {
  std::string out = R"({"first":1,"doc":)";
  JsonWriter w(out);
  w.BeginObject().Key("k").String("v").EndObject();
  out.push_back('}');
  EXPECT_EQ(out, R"({"first":1,"doc":{"k":"v"}})");
}

TEST(JsonWriterTest, DeepNestingStaysValid) {
  std::string out;
  JsonWriter w(out);
  for (int i = 0; i < 63; ++i) w.BeginArray().Int(i);
  for (int i = 0; i < 63; ++i) w.Int(i).EndArray();
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  EXPECT_EQ(parser.parse(out).get(doc), simdjson::SUCCESS) << out;
}

TEST(OpenAiErrorTest, EmptyParamIsNull) {
  std::string out;
  AppendOpenAiError(out, "m", "server_error", "", "internal");
  EXPECT_EQ(out,
            R"({"error":{"message":"m","type":"server_error","param":null,"code":"internal"}})");
}

TEST(OpenAiErrorTest, TypeForStatus) {
  EXPECT_EQ(ErrorTypeForStatus(400), "invalid_request_error");
  EXPECT_EQ(ErrorTypeForStatus(404), "invalid_request_error");
  EXPECT_EQ(ErrorTypeForStatus(401), "authentication_error");
  EXPECT_EQ(ErrorTypeForStatus(403), "permission_error");
  EXPECT_EQ(ErrorTypeForStatus(429), "rate_limit_error");
  EXPECT_EQ(ErrorTypeForStatus(500), "server_error");
  EXPECT_EQ(ErrorTypeForStatus(502), "upstream_error");
  EXPECT_EQ(ErrorTypeForStatus(503), "service_unavailable");
  EXPECT_EQ(ErrorTypeForStatus(504), "upstream_error");
}

}  // namespace
}  // namespace tokenway
