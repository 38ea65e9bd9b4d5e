#include "semantic/semantic_router.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <string>

#include "common/json_writer.h"
#include "semantic/route_eval_set.h"
#include "telemetry/prometheus_text.h"

namespace tokenway {
namespace {

constexpr const char* kRouter = R"(
routes:
  - name: code
    target: coder
    examples: ["Write a Python function that reverses a list", "Fix this JavaScript bug"]
    keywords: [python, function, compile]
    tenants: [acme]
  - name: math
    target: solver
    examples: ["Solve 3x + 7 = 22 for x", "What is the derivative of x^2"]
    keywords: [equation, integral]
  - name: chat
    target: general
    keywords: [hello, joke, weekend]
default: chat
threshold: 0.4
)";

StatusOr<RouterConfig> Load(const std::string& text) {
  return LoadRouterConfig(YAML::Load(text), "models[0].router", "gw.yaml");
}

RouterConfig EvalRouter() {
  RouterConfig c;
  for (const auto& r : semantic::testing::EvalRoutes()) {
    c.routes.push_back({r.name, r.name + "-model", r.examples, r.keywords, {}});
  }
  c.default_route = "chit-chat";
  return c;
}

TEST(RouterConfigTest, LoadsAndRendersTheBlock) {
  auto c = Load(kRouter);
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->routes.size(), 3u);
  EXPECT_EQ(c->routes[0].target, "coder");
  EXPECT_EQ(c->routes[0].tenants, std::vector<std::string>{"acme"});
  EXPECT_EQ(c->routes[2].examples.size(), 0u);
  EXPECT_EQ(c->default_route, "chat");
  EXPECT_DOUBLE_EQ(c->threshold, 0.4);
  std::string json;
  JsonWriter w(json);
  WriteRouterConfig(w, *c);
  EXPECT_NE(json.find(R"("default":"chat")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("classifier":"auto")"), std::string::npos) << json;
}

TEST(RouterConfigTest, BadBlocksNameTheField) {
  struct Case {
    const char* yaml;
    const char* error;
  };
  const Case cases[] = {
      {"routes: [{name: a, target: x, keywords: [k]}]\ndefault: a", "at least two routes"},
      {"routes: [{name: a, target: x, keywords: [k]}, {name: a, target: y, keywords: [k]}]\n"
       "default: a",
       "defined twice"},
      {"routes: [{name: a, keywords: [k]}, {name: b, target: y, keywords: [k]}]\ndefault: a",
       "routes[0].target: is required"},
      {"routes: [{name: a, target: x}, {name: b, target: y, keywords: [k]}]\ndefault: a",
       "needs at least one example or keyword"},
      {"routes: [{name: a, target: x, keywords: [k]}, {name: b, target: y, keywords: [k]}]\n"
       "default: c",
       "no route named 'c'"},
      {"routes: [{name: a, target: x, keywords: [k]}, {name: b, target: y, keywords: [k]}]",
       "default: is required"},
      {"routes: [{name: a, target: x, keywords: [k]}, {name: b, target: y, keywords: [k]}]\n"
       "default: a\nthreshold: 1.5",
       "between 0 and 1"},
      {"routes: [{name: a, target: x, keywords: [k]}, {name: b, target: y, keywords: [k]}]\n"
       "default: a\nclassifier: bert",
       "auto, centroid or logistic"},
      {"routes: [{name: a, target: x, keywords: [k], colour: red}, {name: b, target: y, "
       "keywords: [k]}]\ndefault: a",
       "colour"},
      {"routes: [{name: a, target: x, keywords: [\"\"]}, {name: b, target: y, keywords: [k]}]\n"
       "default: a",
       "must not be empty"},
  };
  for (const Case& c : cases) {
    auto r = Load(c.yaml);
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_NE(r.status().message().find(c.error), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("gw.yaml"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("models[0].router"), std::string::npos)
        << r.status().message();
  }
}

TEST(SemanticRouterTest, RoutesConfidentPromptsAndFallsBackBelowTheThreshold) {
  auto config = Load(kRouter);
  ASSERT_TRUE(config.ok());
  auto router = SemanticRouter::Build("auto-test-1", *config);
  ASSERT_TRUE(router.ok()) << router.status().message();
  const SemanticRouter& r = **router;
  RouteDecision d = r.Decide("Solve the equation 2x + 1 = 9 for x", "");
  EXPECT_EQ(r.route(d.route).name, "math");
  EXPECT_EQ(d.reason, RouteReason::kClassified);
  EXPECT_GE(d.confidence, 0.4f);
  // Nothing to classify: the default route.
  d = r.Decide("", "");
  EXPECT_EQ(r.route(d.route).name, "chat");
  EXPECT_EQ(d.reason, RouteReason::kBelowThreshold);
  // A threshold of 1 sends everything to the default.
  RouterConfig strict = *config;
  strict.threshold = 1.0;
  auto strict_router = SemanticRouter::Build("auto-test-1", strict);
  ASSERT_TRUE(strict_router.ok());
  d = (*strict_router)->Decide("Solve the equation 2x + 1 = 9 for x", "");
  EXPECT_EQ((*strict_router)->route(d.route).name, "chat");
  EXPECT_EQ(d.reason, RouteReason::kBelowThreshold);
  EXPECT_EQ(d.classified, 1);
}

TEST(SemanticRouterTest, TenantRestrictionsSendOthersToTheDefaultOrDenyThem) {
  auto config = Load(kRouter);
  ASSERT_TRUE(config.ok());
  auto router = SemanticRouter::Build("auto-test-2", *config);
  ASSERT_TRUE(router.ok());
  const SemanticRouter& r = **router;
  const char* code = "Write a Python function that parses a config file";
  RouteDecision d = r.Decide(code, "acme");
  EXPECT_EQ(r.route(d.route).name, "code");
  EXPECT_EQ(d.reason, RouteReason::kClassified);
  d = r.Decide(code, "globex");
  EXPECT_EQ(r.route(d.route).name, "chat");
  EXPECT_EQ(d.reason, RouteReason::kTenantRestricted);
  d = r.Decide(code, "");
  EXPECT_EQ(d.reason, RouteReason::kTenantRestricted);
  // The default restricted too: denied.
  RouterConfig locked = *config;
  locked.routes[2].tenants = {"acme"};
  auto locked_router = SemanticRouter::Build("auto-test-2b", locked);
  ASSERT_TRUE(locked_router.ok());
  d = (*locked_router)->Decide(code, "globex");
  EXPECT_EQ(d.route, -1);
  EXPECT_EQ(d.reason, RouteReason::kDenied);
  EXPECT_EQ(d.classified, 0);
  EXPECT_EQ(d.refused, 0);

  PrometheusText t;
  SemanticMetrics::Global().Render(t);
  const std::string& text = t.str();
  EXPECT_NE(
      text.find(
          R"(tokenway_semantic_route_total{model="auto-test-2",route="chat",reason="tenant_restricted"} 2)"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          R"(tokenway_semantic_route_total{model="auto-test-2b",route="code",reason="denied"} 1)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(tokenway_semantic_classify_seconds_count{model="auto-test-2"} 3)"),
            std::string::npos)
      << text;
}

TEST(SemanticRouterTest, EvalSetThroughTheRouter) {
  auto router = SemanticRouter::Build("auto-test-3", EvalRouter());
  ASSERT_TRUE(router.ok()) << router.status().message();
  const auto set = semantic::testing::EvalSet();
  size_t right = 0, below = 0;
  for (const auto& p : set) {
    const RouteDecision d = (*router)->Decide(p.text, "");
    right += d.route == p.route;
    below += d.reason == RouteReason::kBelowThreshold;
  }
  std::printf("router (threshold %.2f): %zu of %zu on the labelled route, %zu below threshold\n",
              EvalRouter().threshold, right, set.size(), below);
  EXPECT_GE(double(right) / set.size(), 0.88);
}

TEST(SemanticRouterTest, RoutingTextIsTheLastUserMessage) {
  EXPECT_EQ(SemanticRouter::RoutingText("system: be brief\nuser: translate hi\n", true),
            "translate hi\n");
  EXPECT_EQ(SemanticRouter::RoutingText(
                "user: first\nassistant: ok\nuser: second question\nwith two lines\n", true),
            "second question\nwith two lines\n");
  // "user: " inside a message is not a message start.
  EXPECT_EQ(SemanticRouter::RoutingText("user: the user: field\n", true), "the user: field\n");
  EXPECT_EQ(SemanticRouter::RoutingText("system: only\n", true), "system: only\n");
  EXPECT_EQ(SemanticRouter::RoutingText("user: raw prompt", false), "user: raw prompt");
}

TEST(SemanticRouterTest, UntrainableRoutesFailTheBuild) {
  RouterConfig c;
  c.routes = {{"a", "x", {"!!!"}, {}, {}}, {"b", "y", {"hello"}, {}, {}}};
  c.default_route = "a";
  auto r = SemanticRouter::Build("auto-test-4", c);
  // Punctuation is a feature, so "!!!" trains; a route of whitespace does not.
  EXPECT_TRUE(r.ok());
  c.routes[0].examples = {"   "};
  r = SemanticRouter::Build("auto-test-4", c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("model 'auto-test-4'"), std::string::npos);
  EXPECT_NE(r.status().message().find("no words"), std::string::npos);
}

}  // namespace
}  // namespace tokenway
