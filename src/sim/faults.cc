#include "sim/faults.h"

#include <simdjson.h>

#include <cstdio>

namespace tokenway::sim {
namespace {

std::string ReadRate(simdjson::dom::element value, std::string_view name, double& out) {
  double rate = 0;
  if (value.is_int64()) {
    rate = static_cast<double>(value.get_int64().value());
  } else if (value.get_double().get(rate) != simdjson::SUCCESS) {
    return std::string(name) + " must be a number";
  }
  if (!(rate >= 0 && rate <= 1)) return std::string(name) + " must be within [0, 1]";
  out = rate;
  return {};
}

std::string ReadCount(simdjson::dom::element value, std::string_view name, int64_t minimum,
                      int64_t& out) {
  int64_t count = 0;
  if (value.get_int64().get(count) != simdjson::SUCCESS) {
    return std::string(name) + " must be an integer";
  }
  if (count < minimum) return std::string(name) + " is out of range";
  out = count;
  return {};
}

}  // namespace

std::string FaultConfig::ApplyJson(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) {
    return "body is not valid JSON";
  }
  simdjson::dom::object object;
  if (doc.get_object().get(object) != simdjson::SUCCESS) return "body must be a JSON object";
  FaultConfig next = *this;
  for (auto [key, value] : object) {
    std::string error;
    if (key == "reset") {
      bool reset = false;
      if (value.get_bool().get(reset) != simdjson::SUCCESS) return "reset must be a boolean";
      if (reset) next = FaultConfig{};
    } else if (key == "error_rate") {
      error = ReadRate(value, key, next.error_rate);
    } else if (key == "rate_limit_rate") {
      error = ReadRate(value, key, next.rate_limit_rate);
    } else if (key == "garbage_rate") {
      error = ReadRate(value, key, next.garbage_rate);
    } else if (key == "stall_after_tokens") {
      error = ReadCount(value, key, -1, next.stall_after_tokens);
    } else if (key == "drop_after_tokens") {
      error = ReadCount(value, key, -1, next.drop_after_tokens);
    } else if (key == "slow_start_ms") {
      error = ReadCount(value, key, 0, next.slow_start_ms);
    } else if (key == "health_fail") {
      if (value.get_bool().get(next.health_fail) != simdjson::SUCCESS) {
        error = "health_fail must be a boolean";
      }
    } else {
      error = "unknown fault field: " + std::string(key);
    }
    if (!error.empty()) return error;
  }
  *this = next;
  return {};
}

std::string FaultConfig::ToJson() const {
  char text[512];
  std::snprintf(text, sizeof text,
                "{\"error_rate\":%g,\"rate_limit_rate\":%g,\"stall_after_tokens\":%lld,"
                "\"drop_after_tokens\":%lld,\"slow_start_ms\":%lld,\"health_fail\":%s,"
                "\"garbage_rate\":%g}",
                error_rate, rate_limit_rate, static_cast<long long>(stall_after_tokens),
                static_cast<long long>(drop_after_tokens), static_cast<long long>(slow_start_ms),
                health_fail ? "true" : "false", garbage_rate);
  return text;
}

}  // namespace tokenway::sim
