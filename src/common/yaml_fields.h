// YamlFields: typed reads of YAML configuration fields whose errors name the file, line, column
// and field ("gw.yaml:12:5: pools[0].name: must be a string").
//
// The configuration loaders (control/config.cc, governance/governance_config.cc) derive from it;
// a failed read throws YamlFieldError, which the loader's entry point turns into a Status. Used
// on the control thread only, at load and reload.
#pragma once

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "common/duration.h"

namespace tokenway {

// Thrown inside the loaders only; converted to a Status at the module boundary.
struct YamlFieldError {
  std::string message;
};

class YamlFields {
 public:
  explicit YamlFields(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void Fail(const YAML::Node& node, const std::string& field,
                         const std::string& what) const;
  // `node` must be a mapping whose keys are all in `allowed`; an empty `field` is the root.
  void ExpectMap(const YAML::Node& node, const std::string& field,
                 std::initializer_list<const char*> allowed) const;
  static std::string Join(const std::string& a, const std::string& b) {
    return a.empty() ? b : a + "." + b;
  }

  std::string String(const YAML::Node& node, const std::string& field) const;
  bool Bool(const YAML::Node& node, const std::string& field) const;
  // A positive duration such as 250ms or 10s.
  Duration Dur(const YAML::Node& node, const std::string& field) const;

  // An integer scalar in [min, max]; T's signedness decides what the messages ask for.
  template <typename T>
  T Integer(const YAML::Node& node, const std::string& field, T min, T max) const {
    constexpr const char* kKind = std::is_signed_v<T> ? "an integer" : "a non-negative integer";
    if (!node.IsScalar()) {
      Fail(node, field, std::is_signed_v<T> ? "must be an integer" : "must be a number");
    }
    const std::string& s = node.Scalar();
    T v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size()) {
      Fail(node, field, std::string("must be ") + kKind + ", got '" + s + "'");
    }
    if (v < min || v > max) {
      Fail(node, field, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    return v;
  }

 protected:
  std::string source_;
};

}  // namespace tokenway
