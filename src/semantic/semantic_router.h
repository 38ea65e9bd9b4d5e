// SemanticRouter: the routing step of a virtual model (models[].router). Built on the control
// thread from a RouterConfig whenever a Runtime snapshot is built (the classifier is trained
// then); the resolve phase (gateway/phases/resolve.cc) calls Decide on worker threads for every
// request whose model is the virtual model, then sends the request to the decided route's target.
//
// Decision: the route the classifier names when its confidence reaches the threshold, otherwise
// the default route (below_threshold). A route with a `tenants` list is only for those tenants: a
// request from another tenant (or without one) goes to the default route instead
// (tenant_restricted), and is denied (403) when the default is restricted against it too. Every
// decision is counted in SemanticMetrics under the model, the route taken and the reason.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "semantic/route_classifier.h"
#include "semantic/router_config.h"
#include "semantic/semantic_metrics.h"
#include "tokenway/status.h"

namespace tokenway {

struct RouteDecision {
  int route = -1;       // the route taken (index into config().routes); -1 when denied
  int refused = -1;     // when denied: the route refused (the classified one, or the default)
  int classified = -1;  // the classifier's route; -1 when the text had no features
  float confidence = 0.0f;
  RouteReason reason = RouteReason::kClassified;
};

class SemanticRouter {
 public:
  // `model` is the virtual model's name (metric label). Trains the classifier.
  static StatusOr<std::shared_ptr<const SemanticRouter>> Build(const std::string& model,
                                                               const RouterConfig& config);

  // Classifies `text` (see RoutingText) with the lexical classifier and decides for `tenant`
  // (empty: no tenant). Counts the decision and the classify time.
  RouteDecision Decide(std::string_view text, std::string_view tenant) const;
  // Decides from a classification made elsewhere (the embeddings backend); `reason` is what a
  // confident classification counts as (kClassified, or kBackendFallback for the lexical
  // classifier standing in for a failed backend).
  RouteDecision Apply(semantic::Classification c, std::string_view tenant,
                      RouteReason reason) const;

  // The part of a request's flattened prompt (common/prompt_text.h) that is classified: for chat
  // requests the last user message (from its "user: " line to the end), else the whole prompt.
  static std::string_view RoutingText(std::string_view prompt_text, bool chat);

  const std::string& model() const { return model_; }
  const RouterConfig& config() const { return config_; }
  const RouteConfig& route(int i) const { return config_.routes[static_cast<size_t>(i)]; }
  const semantic::RouteClassifier& classifier() const { return *classifier_; }
  bool Allowed(int route, std::string_view tenant) const;

 private:
  SemanticRouter() = default;

  std::string model_;
  RouterConfig config_;
  int default_route_ = 0;
  std::shared_ptr<const semantic::RouteClassifier> classifier_;
  std::vector<std::atomic<uint64_t>*> decisions_;  // [route * kRouteReasons + reason]
  ClassifyTiming* timing_ = nullptr;
};

}  // namespace tokenway
