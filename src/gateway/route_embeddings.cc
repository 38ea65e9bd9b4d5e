#include "gateway/route_embeddings.h"

#include <xxhash.h>

#include <chrono>

#include "common/duration.h"
#include "common/json_writer.h"

namespace tokenway {
namespace {

constexpr int64_t kCentroidRetryNs = 1'000'000'000;  // a failed centroid fetch waits 1 s
constexpr auto kMinCentroidTimeout = std::chrono::seconds(2);

std::chrono::milliseconds Millis(Duration d) {
  return std::max(std::chrono::milliseconds(1),
                  std::chrono::duration_cast<std::chrono::milliseconds>(d));
}

void AppendRequest(std::string& out, const RouterEmbeddingsConfig& config,
                   const std::vector<std::string_view>& inputs) {
  JsonWriter w(out);
  w.BeginObject();
  w.Key("model").String(config.model);
  w.Key("input");
  if (inputs.size() == 1) {
    w.String(inputs[0]);
  } else {
    w.BeginArray();
    for (std::string_view s : inputs) w.String(s);
    w.EndArray();
  }
  w.Key("encoding_format").String("float");
  w.EndObject();
}

}  // namespace

StatusOr<std::vector<std::vector<float>>> RouteEmbeddings::ParseEmbeddings(
    simdjson::dom::parser& parser, std::string_view body, size_t expected) {
  simdjson::dom::element doc;
  if (parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS) {
    return Status::Error("the embeddings answer is not JSON");
  }
  simdjson::dom::array data;
  if (doc["data"].get_array().get(data) != simdjson::SUCCESS || data.size() != expected) {
    return Status::Error("the embeddings answer has no 'data' list of " + std::to_string(expected) +
                         " embeddings");
  }
  std::vector<std::vector<float>> out(expected);
  size_t dimension = 0;
  for (simdjson::dom::element item : data) {
    int64_t index = 0;
    simdjson::dom::array values;
    if (item["index"].get_int64().get(index) != simdjson::SUCCESS || index < 0 ||
        static_cast<size_t>(index) >= expected || !out[index].empty() ||
        item["embedding"].get_array().get(values) != simdjson::SUCCESS || values.size() == 0) {
      return Status::Error("an embedding of the answer has no valid index or float list");
    }
    if (dimension == 0) dimension = values.size();
    if (values.size() != dimension) return Status::Error("embeddings of different dimensions");
    std::vector<float>& v = out[index];
    v.reserve(dimension);
    for (simdjson::dom::element x : values) {
      double d = 0;
      if (x.get_double().get(d) != simdjson::SUCCESS) {
        int64_t i = 0;
        if (x.get_int64().get(i) != simdjson::SUCCESS) {
          return Status::Error("an embedding holds a value that is not a number");
        }
        d = static_cast<double>(i);
      }
      v.push_back(static_cast<float>(d));
    }
  }
  return out;
}

RouteEmbeddings::State* RouteEmbeddings::StateFor(
    const std::shared_ptr<const SemanticRouter>& router) {
  for (auto& s : states_) {
    if (s->router.lock() == router) return s.get();
  }
  // Forget routers of snapshots gone (no coroutine of theirs can still run: each holds its
  // router alive).
  std::erase_if(states_, [](const std::unique_ptr<State>& s) { return s->router.expired(); });
  auto state = std::make_unique<State>();
  state->router = router;
  for (const std::string& url : router->embedding_urls()) {
    auto target = ParseHttpUrl(url);
    if (target.ok()) state->targets.push_back(std::move(*target));
  }
  states_.push_back(std::move(state));
  return states_.back().get();
}

boost::asio::awaitable<void> RouteEmbeddings::FetchCentroids(
    std::shared_ptr<const SemanticRouter> router, State* state) {
  const RouterConfig& config = router->config();
  std::vector<std::string_view> inputs;
  std::vector<size_t> route_of;
  for (size_t r = 0; r < config.routes.size(); ++r) {
    for (const auto& e : config.routes[r].examples) {
      inputs.push_back(e);
      route_of.push_back(r);
    }
    for (const auto& k : config.routes[r].keywords) {
      inputs.push_back(k);
      route_of.push_back(r);
    }
  }
  std::string body;
  AppendRequest(body, config.embeddings, inputs);
  JsonPostOptions options;
  options.timeout = std::max(Millis(config.embeddings.timeout) * 10,
                             std::chrono::milliseconds(kMinCentroidTimeout));
  options.max_response_bytes = 64 * 1024 * 1024;
  state->fetching = true;
  JsonResponse response = co_await client_.Post(NextTarget(state), body, options);
  state->fetching = false;
  if (response.ok() && response.status == 200) {
    auto embeddings = ParseEmbeddings(parser_, response.body, inputs.size());
    if (embeddings.ok()) {
      std::vector<std::vector<std::vector<float>>> per_route(config.routes.size());
      for (size_t i = 0; i < embeddings->size(); ++i) {
        per_route[route_of[i]].push_back(std::move((*embeddings)[i]));
      }
      auto centroids = semantic::EmbeddingClassifier::Build(per_route);
      if (centroids.ok()) {
        state->centroids = std::move(*centroids);
        co_return;
      }
    }
  }
  state->retry_after_ns = MonotonicNanos() + kCentroidRetryNs;
}

boost::asio::awaitable<std::optional<std::vector<float>>> RouteEmbeddings::Embed(
    std::shared_ptr<const SemanticRouter> router, State* state, std::string_view text) {
  const RouterEmbeddingsConfig& config = router->config().embeddings;
  const uint64_t key = XXH3_64bits(text.data(), text.size());
  if (auto it = state->index.find(key); it != state->index.end()) {
    state->lru.splice(state->lru.begin(), state->lru, it->second);
    co_return it->second->second;
  }
  std::string body;
  AppendRequest(body, config, {text});
  JsonPostOptions options;
  options.timeout = Millis(config.timeout);
  JsonResponse response = co_await client_.Post(NextTarget(state), body, options);
  if (!response.ok() || response.status != 200) co_return std::nullopt;
  auto embeddings = ParseEmbeddings(parser_, response.body, 1);
  if (!embeddings.ok()) co_return std::nullopt;
  std::vector<float> v = std::move((*embeddings)[0]);
  if (config.cache_entries > 0 && !state->index.count(key)) {
    state->lru.emplace_front(key, v);
    state->index.emplace(key, state->lru.begin());
    if (state->lru.size() > config.cache_entries) {
      state->index.erase(state->lru.back().first);
      state->lru.pop_back();
    }
  }
  co_return v;
}

boost::asio::awaitable<RouteDecision> RouteEmbeddings::Decide(
    std::shared_ptr<const SemanticRouter> router, std::string_view text, std::string_view tenant,
    bool* by_embeddings) {
  *by_embeddings = false;
  State* state = StateFor(router);
  if (!state->centroids && !state->fetching && MonotonicNanos() >= state->retry_after_ns &&
      !state->targets.empty()) {
    co_await FetchCentroids(router, state);
  }
  if (state->centroids) {
    std::optional<std::vector<float>> v = co_await Embed(router, state, text);
    if (v) {
      const semantic::Classification c = state->centroids->Classify(*v);
      if (c.route >= 0) {
        *by_embeddings = true;
        co_return router->Apply(c, tenant, RouteReason::kClassified);
      }
      if (v->size() == state->centroids->dimension()) {
        // A text without features embeds to zeros: the default route, as lexically.
        *by_embeddings = true;
        co_return router->Apply(c, tenant, RouteReason::kClassified);
      }
    }
  }
  co_return router->Apply(router->classifier().Classify(text), tenant,
                          RouteReason::kBackendFallback);
}

}  // namespace tokenway
