// RouteEmbeddings: the embeddings-backend path of semantic routing (models[].router.embeddings),
// one per worker, used by the resolve phase on the worker's thread only.
//
// A prompt is classified by its embedding — fetched from the configured OpenAI-compatible
// /v1/embeddings endpoint (or the endpoints of the configured pool, in turn) through the worker's
// JsonClient, or found in the worker's LRU cache
// keyed by the prompt's xxh3 hash — against the centroids of the routes' examples and keywords,
// which this worker embeds in one batched call on its first request to the router (calls again at
// most once a second while that fails). Whenever the backend cannot answer in time (timeout,
// connection error, non-200, malformed answer) or the centroids are not there yet, the router's
// lexical classifier decides instead and the decision is counted with reason backend_fallback.
// State is per router object, so a reload (a new router) starts afresh; states of routers no
// snapshot holds any more are dropped.
#pragma once

#include <simdjson.h>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "http/json_client.h"
#include "semantic/embedding_classifier.h"
#include "semantic/semantic_router.h"

namespace tokenway {

class RouteEmbeddings {
 public:
  explicit RouteEmbeddings(JsonClient& client) : client_(client) {}

  // Decides for `text` (SemanticRouter::RoutingText) and `tenant`; the router must have
  // config().embeddings enabled. `by_embeddings` tells whether the embedding decided.
  boost::asio::awaitable<RouteDecision> Decide(std::shared_ptr<const SemanticRouter> router,
                                               std::string_view text, std::string_view tenant,
                                               bool* by_embeddings);

  // Parses an OpenAI embeddings answer holding `expected` embeddings of one dimension, in
  // `index` order (public for tests).
  static StatusOr<std::vector<std::vector<float>>> ParseEmbeddings(simdjson::dom::parser& parser,
                                                                   std::string_view body,
                                                                   size_t expected);

 private:
  struct State {
    std::weak_ptr<const SemanticRouter> router;
    std::vector<HttpTarget> targets;  // the router's embedding_urls(), called in turn
    size_t next_target = 0;
    std::optional<semantic::EmbeddingClassifier> centroids;
    bool fetching = false;
    int64_t retry_after_ns = 0;
    // LRU: most recent first; the map points into the list.
    std::list<std::pair<uint64_t, std::vector<float>>> lru;
    std::unordered_map<uint64_t, decltype(lru)::iterator> index;
  };
  State* StateFor(const std::shared_ptr<const SemanticRouter>& router);
  boost::asio::awaitable<void> FetchCentroids(std::shared_ptr<const SemanticRouter> router,
                                              State* state);
  static const HttpTarget& NextTarget(State* state) {
    return state->targets[state->next_target++ % state->targets.size()];
  }
  boost::asio::awaitable<std::optional<std::vector<float>>> Embed(
      std::shared_ptr<const SemanticRouter> router, State* state, std::string_view text);

  JsonClient& client_;
  simdjson::dom::parser parser_;
  std::vector<std::unique_ptr<State>> states_;
};

}  // namespace tokenway
