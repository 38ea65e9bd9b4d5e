#include "semantic/router_config.h"

#include <yaml-cpp/yaml.h>

#include <charconv>

#include "common/json_writer.h"
#include "common/yaml_fields.h"

namespace tokenway {
namespace {

class RouterLoader : public YamlFields {
 public:
  using YamlFields::YamlFields;

  std::vector<std::string> Strings(const YAML::Node& node, const std::string& field) const {
    if (!node.IsSequence()) Fail(node, field, "must be a list of strings");
    std::vector<std::string> out;
    for (size_t i = 0; i < node.size(); ++i) {
      std::string s = String(node[i], field + "[" + std::to_string(i) + "]");
      if (s.empty()) Fail(node[i], field + "[" + std::to_string(i) + "]", "must not be empty");
      out.push_back(std::move(s));
    }
    return out;
  }

  double Fraction(const YAML::Node& node, const std::string& field) const {
    if (!node.IsScalar()) Fail(node, field, "must be a number between 0 and 1");
    const std::string& s = node.Scalar();
    double v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size() || !(v >= 0.0 && v <= 1.0)) {
      Fail(node, field, "must be a number between 0 and 1, got '" + s + "'");
    }
    return v;
  }

  RouterConfig Load(const YAML::Node& node, const std::string& field) {
    ExpectMap(node, field, {"routes", "default", "threshold", "classifier"});
    RouterConfig r;
    const YAML::Node routes = node["routes"];
    if (!routes) Fail(node, Join(field, "routes"), "is required");
    if (!routes.IsSequence() || routes.size() < 2) {
      Fail(routes, Join(field, "routes"), "must be a list of at least two routes");
    }
    for (size_t i = 0; i < routes.size(); ++i) {
      const YAML::Node& n = routes[i];
      const std::string f = Join(field, "routes[" + std::to_string(i) + "]");
      ExpectMap(n, f, {"name", "target", "examples", "keywords", "tenants"});
      RouteConfig route;
      if (!n["name"]) Fail(n, Join(f, "name"), "is required");
      route.name = String(n["name"], Join(f, "name"));
      if (route.name.empty()) Fail(n["name"], Join(f, "name"), "must not be empty");
      for (const RouteConfig& earlier : r.routes) {
        if (earlier.name == route.name) {
          Fail(n["name"], Join(f, "name"), "route '" + route.name + "' is defined twice");
        }
      }
      if (!n["target"]) Fail(n, Join(f, "target"), "is required: the model this route serves");
      route.target = String(n["target"], Join(f, "target"));
      if (route.target.empty()) Fail(n["target"], Join(f, "target"), "must not be empty");
      if (auto e = n["examples"]) route.examples = Strings(e, Join(f, "examples"));
      if (auto k = n["keywords"]) route.keywords = Strings(k, Join(f, "keywords"));
      if (auto t = n["tenants"]) route.tenants = Strings(t, Join(f, "tenants"));
      if (route.examples.empty() && route.keywords.empty()) {
        Fail(n, f, "route '" + route.name + "' needs at least one example or keyword");
      }
      r.routes.push_back(std::move(route));
    }
    if (!node["default"]) Fail(node, Join(field, "default"), "is required: a route's name");
    r.default_route = String(node["default"], Join(field, "default"));
    bool known = false;
    for (const RouteConfig& route : r.routes) known |= route.name == r.default_route;
    if (!known) {
      Fail(node["default"], Join(field, "default"), "no route named '" + r.default_route + "'");
    }
    if (auto t = node["threshold"]) r.threshold = Fraction(t, Join(field, "threshold"));
    if (auto c = node["classifier"]) {
      const std::string kind = String(c, Join(field, "classifier"));
      if (kind == "auto") {
        r.classifier = semantic::ClassifierKind::kAuto;
      } else if (kind == "centroid") {
        r.classifier = semantic::ClassifierKind::kCentroid;
      } else if (kind == "logistic") {
        r.classifier = semantic::ClassifierKind::kLogistic;
      } else {
        Fail(c, Join(field, "classifier"), "must be auto, centroid or logistic");
      }
    }
    return r;
  }
};

}  // namespace

StatusOr<RouterConfig> LoadRouterConfig(const YAML::Node& node, const std::string& field,
                                        const std::string& source) {
  try {
    return RouterLoader(source).Load(node, field);
  } catch (const YamlFieldError& e) {
    return Status::Error(e.message);
  } catch (const YAML::Exception& e) {
    return Status::Error(source + ": " + field + ": " + e.what());
  }
}

void WriteRouterConfig(JsonWriter& w, const RouterConfig& r) {
  auto strings = [&w](const char* key, const std::vector<std::string>& v) {
    w.Key(key).BeginArray();
    for (const auto& s : v) w.String(s);
    w.EndArray();
  };
  w.BeginObject();
  w.Key("routes").BeginArray();
  for (const RouteConfig& route : r.routes) {
    w.BeginObject();
    w.Key("name").String(route.name);
    w.Key("target").String(route.target);
    strings("examples", route.examples);
    strings("keywords", route.keywords);
    strings("tenants", route.tenants);
    w.EndObject();
  }
  w.EndArray();
  w.Key("default").String(r.default_route);
  w.Key("threshold").Double(r.threshold);
  w.Key("classifier").String(semantic::ClassifierKindName(r.classifier));
  w.EndObject();
}

}  // namespace tokenway
