// RouterConfig: the `router:` block of a virtual model (models[].router) — routes, each with the
// model it sends requests to and the example prompts and keywords that describe its traffic, the
// default route and the confidence threshold. Read from YAML by LoadRouterConfig on the control
// thread (control/config.cc calls it for every model that has a router), rendered back for
// /admin/config by WriteRouterConfig. docs/configuration.md documents each field.
#pragma once

#include <string>
#include <vector>

#include "semantic/route_classifier.h"
#include "tokenway/status.h"

namespace YAML {
class Node;
}

namespace tokenway {

class JsonWriter;

struct RouteConfig {
  std::string name;    // x-tokenway-route, metrics, access log
  std::string target;  // a configured model (plain, LoRA adapter or alias); not a virtual model
  std::vector<std::string> examples;
  std::vector<std::string> keywords;
  // Tenants allowed this route; empty: every request (also those without a tenant).
  std::vector<std::string> tenants;
};

struct RouterConfig {
  std::vector<RouteConfig> routes;
  std::string default_route;  // a route's name: below the threshold, or when a tenant may not
  double threshold = 0.35;    // minimum confidence for the classified route
  semantic::ClassifierKind classifier = semantic::ClassifierKind::kAuto;
  bool enabled() const { return !routes.empty(); }
};

// Reads a models[i].router mapping; `field` names it in errors ("models[2].router").
// Checks what the block alone can: at least two routes, unique names, a target each, examples or
// keywords each, a default that names a route, a threshold in [0, 1]. control/config.cc checks
// the targets and tenants against the rest of the configuration.
StatusOr<RouterConfig> LoadRouterConfig(const YAML::Node& node, const std::string& field,
                                        const std::string& source);

// Renders the block for /admin/config.
void WriteRouterConfig(JsonWriter& w, const RouterConfig& router);

}  // namespace tokenway
