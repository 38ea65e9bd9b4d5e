#include "common/yaml_fields.h"

#include <algorithm>
#include <sstream>

namespace tokenway {

void YamlFields::Fail(const YAML::Node& node, const std::string& field,
                      const std::string& what) const {
  std::ostringstream out;
  out << source_;
  if (node.IsDefined() && node.Mark().line >= 0) {
    out << ":" << node.Mark().line + 1 << ":" << node.Mark().column + 1;
  }
  out << ": " << field << ": " << what;
  throw YamlFieldError{out.str()};
}

void YamlFields::ExpectMap(const YAML::Node& node, const std::string& field,
                           std::initializer_list<const char*> allowed) const {
  if (!node.IsMap()) Fail(node, field.empty() ? "(root)" : field, "must be a mapping");
  for (const auto& kv : node) {
    std::string key = kv.first.as<std::string>();
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      Fail(kv.first, Join(field, key), "unknown field (known: " + list + ")");
    }
  }
}

std::string YamlFields::String(const YAML::Node& node, const std::string& field) const {
  if (!node.IsScalar()) Fail(node, field, "must be a string");
  return node.Scalar();
}

bool YamlFields::Bool(const YAML::Node& node, const std::string& field) const {
  if (!node.IsScalar()) Fail(node, field, "must be true or false");
  const std::string& s = node.Scalar();
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  Fail(node, field, "must be true or false, got '" + s + "'");
}

Duration YamlFields::Dur(const YAML::Node& node, const std::string& field) const {
  if (!node.IsScalar()) Fail(node, field, "must be a duration such as 250ms or 10s");
  auto d = ParseDuration(node.Scalar());
  if (!d.ok()) Fail(node, field, d.status().message());
  if (d->count() <= 0) Fail(node, field, "must be positive");
  return *d;
}

}  // namespace tokenway
