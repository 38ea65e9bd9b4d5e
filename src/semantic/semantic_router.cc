#include "semantic/semantic_router.h"

#include <algorithm>

#include "common/duration.h"

namespace tokenway {

StatusOr<std::shared_ptr<const SemanticRouter>> SemanticRouter::Build(const std::string& model,
                                                                      const RouterConfig& config) {
  std::vector<semantic::RouteExamples> routes;
  for (const RouteConfig& r : config.routes) routes.push_back({r.name, r.examples, r.keywords});
  semantic::ClassifierOptions options;
  options.kind = config.classifier;
  auto classifier = semantic::RouteClassifier::Train(routes, options);
  if (!classifier.ok()) {
    return Status::Error("model '" + model + "': router: " + classifier.status().message());
  }
  std::shared_ptr<SemanticRouter> r(new SemanticRouter());
  r->model_ = model;
  r->config_ = config;
  for (RouteConfig& route : r->config_.routes)
    std::sort(route.tenants.begin(), route.tenants.end());
  r->classifier_ = std::move(*classifier);
  r->default_route_ = -1;
  for (size_t i = 0; i < config.routes.size(); ++i) {
    if (config.routes[i].name == config.default_route) r->default_route_ = static_cast<int>(i);
  }
  if (r->default_route_ < 0) {
    return Status::Error("model '" + model + "': router: no route named '" + config.default_route +
                         "'");
  }
  SemanticMetrics& m = SemanticMetrics::Global();
  r->decisions_.resize(config.routes.size() * kRouteReasons);
  for (size_t i = 0; i < config.routes.size(); ++i) {
    for (size_t reason = 0; reason < kRouteReasons; ++reason) {
      r->decisions_[i * kRouteReasons + reason] =
          m.Decision(model, config.routes[i].name, static_cast<RouteReason>(reason));
    }
  }
  r->timing_ = m.Classify(model);
  return std::shared_ptr<const SemanticRouter>(std::move(r));
}

bool SemanticRouter::Allowed(int route, std::string_view tenant) const {
  const auto& tenants = config_.routes[static_cast<size_t>(route)].tenants;
  return tenants.empty() ||
         (!tenant.empty() && std::binary_search(tenants.begin(), tenants.end(), tenant));
}

RouteDecision SemanticRouter::Decide(std::string_view text, std::string_view tenant) const {
  const int64_t start = MonotonicNanos();
  const semantic::Classification c = classifier_->Classify(text);
  timing_->Record(MonotonicNanos() - start);
  return Apply(c, tenant, RouteReason::kClassified);
}

RouteDecision SemanticRouter::Apply(semantic::Classification c, std::string_view tenant,
                                    RouteReason reason) const {
  RouteDecision d;
  d.classified = c.route;
  d.confidence = c.confidence;
  if (c.route >= 0 && c.confidence >= config_.threshold) {
    d.route = c.route;
    d.reason = reason;
  } else {
    d.route = default_route_;
    d.reason = RouteReason::kBelowThreshold;
  }
  if (!Allowed(d.route, tenant)) {
    if (d.route != default_route_ && Allowed(default_route_, tenant)) {
      d.route = default_route_;
      d.reason = RouteReason::kTenantRestricted;
    } else {
      d.reason = RouteReason::kDenied;
    }
  }
  // A denial is counted under the route that was refused.
  const int counted = d.route;
  decisions_[static_cast<size_t>(counted) * kRouteReasons + static_cast<size_t>(d.reason)]
      ->fetch_add(1, std::memory_order_relaxed);
  if (d.reason == RouteReason::kDenied) {
    d.refused = d.route;
    d.route = -1;
  }
  return d;
}

std::string_view SemanticRouter::RoutingText(std::string_view prompt, bool chat) {
  if (!chat) return prompt;
  constexpr std::string_view kUser = "user: ";
  size_t at = prompt.size();
  while (at > 0) {
    const size_t found = prompt.rfind(kUser, at - 1);
    if (found == std::string_view::npos) break;
    if (found == 0 || prompt[found - 1] == '\n') return prompt.substr(found + kUser.size());
    at = found;
  }
  return prompt;
}

}  // namespace tokenway
