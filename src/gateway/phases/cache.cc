// Phase 4b of the request path: the response cache, looked up right after resolve (so the key
// holds the model actually served: a new version never answers with an old one's text) and
// before route (a hit costs no pick, no upstream and no queue). A hit answers in the request's
// own mode — a JSON body, or an event stream with the usage chunk when the client asked for
// usage — with X-Tokenway-Cache: hit; both front doors send it as a local answer (the
// endpoint-picker door as an ImmediateResponse). Forwarded responses say miss or bypass.
//
// A miss whose answer may be stored has its answer collected while it is relayed
// (RelayStreamEvent, RelayWholeBody: ctx.cache.assembly) and stored at settle, only when it is
// a complete 200 with one choice that ended with finish_reason "stop" — never a truncated
// (length), filtered, errored or tool-calling answer — with its generation time (the latency a
// later hit saves). Answers that response processors see are not stored: a hit would skip them.
//
// Semantic (cache.semantic): when the exact key misses, the prompt's lexical vector
// (semantic/text_vector.h, folded to a small dense dimension) is looked up among the stored
// prompts of the same tenant and served model whose other parameters and whose numbers hash the
// same; the most
// similar one at or above the threshold answers, if its entry is still stored. The vector is
// filed with the answer of a miss when it is stored.
//
// Opt-outs: a tenant with cache: false; a request with Cache-Control: no-cache (do not read;
// the fresh answer may be stored) or no-store (do not store). Lookups never wait for another
// worker: a busy store shard is a miss, a slow Redis (cache.redis.timeout) is a miss.
#include <ctime>

#include "common/duration.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"

namespace tokenway {

namespace {

bool EqualsIgnoreCaseAscii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// The request's Cache-Control directives that concern the cache.
struct ClientDirectives {
  bool no_cache = false;
  bool no_store = false;
};

ClientDirectives ParseCacheControl(std::string_view value) {
  ClientDirectives d;
  while (!value.empty()) {
    const size_t comma = value.find(',');
    std::string_view token = value.substr(0, comma);
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
      token.remove_prefix(1);
    }
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (EqualsIgnoreCaseAscii(token, "no-cache")) d.no_cache = true;
    if (EqualsIgnoreCaseAscii(token, "no-store")) d.no_store = true;
  }
  return d;
}

// A hash of the numbers in the prompt, in order. Lexical similarity barely separates "region 12"
// from "region 13" (cosine ≈ 0.9), so a semantic match must also have the same numbers.
uint64_t NumbersHash(std::string_view text) {
  uint64_t h = 0x9E3779B97F4A7C15ull;
  bool in_number = false;
  for (char ch : text) {
    if (ch >= '0' && ch <= '9') {
      h = (h ^ static_cast<uint64_t>(ch)) * 0x100000001B3ull;
      in_number = true;
    } else if (in_number) {
      h = (h ^ 0xFF) * 0x100000001B3ull;  // the end of one number
      in_number = false;
    }
  }
  return h;
}

// Whether a response processor applies to the request (its answer must then not be stored).
bool ResponseProcessorsApply(const RequestContext& ctx) {
  for (const auto& p : ctx.runtime->payload.response) {
    if (p->Applies(ctx.inspected.model, ctx.record.tenant)) return true;
  }
  return false;
}

// Answers from `entry`: the reply the front door sends, the record, counters, the charge.
PhaseResult ServeHit(RequestContext& ctx, const CachedResponse& answer) {
  RequestCacheState& c = ctx.cache;
  RequestRecord& rec = ctx.record;
  const CacheConfig& config = ctx.runtime->config.cache;
  c.outcome = RequestCacheState::Outcome::kHit;
  LocalReply& reply = ctx.reply;
  reply.status = 200;
  reply.body.clear();
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  if (ctx.inspected.stream) {
    RenderCachedStream(answer, rec.request_id, created, ctx.inspected.include_usage, reply.body);
    reply.content_type = "text/event-stream";
  } else {
    RenderCachedJson(answer, rec.request_id, created, reply.body);
  }
  reply.headers.assign(c.header_line());
  reply.headers.append(ctx.governance.headers());
  if (!rec.payload_flags.empty()) {
    reply.headers.append("X-Tokenway-Flagged: ").append(rec.payload_flags).append("\r\n");
  }
  rec.status = 200;
  rec.response_bytes = reply.body.size();
  rec.first_byte_ns = MonotonicNanos();
  rec.usage.prompt_tokens = answer.prompt_tokens;
  rec.usage.completion_tokens = answer.completion_tokens;
  rec.usage.cached_tokens = answer.prompt_tokens;
  switch (config.charge) {
    case CacheCharge::kNone:
      c.charge.prompt_tokens = 0;
      c.charge.completion_tokens = 0;
      break;
    case CacheCharge::kInput:
      c.charge.prompt_tokens = answer.prompt_tokens;
      c.charge.completion_tokens = 0;
      break;
    case CacheCharge::kFull:
      c.charge.prompt_tokens = answer.prompt_tokens;
      c.charge.completion_tokens = answer.completion_tokens;
      break;
  }
  if (CacheStatsRow* row = c.row) {
    row->hits.fetch_add(1, std::memory_order_relaxed);
    if (c.semantic) row->semantic_hits.fetch_add(1, std::memory_order_relaxed);
    row->saved_ns.fetch_add(static_cast<uint64_t>(answer.generation_ns), std::memory_order_relaxed);
    row->hit_prompt_tokens.fetch_add(static_cast<uint64_t>(answer.prompt_tokens),
                                     std::memory_order_relaxed);
    row->hit_completion_tokens.fetch_add(static_cast<uint64_t>(answer.completion_tokens),
                                         std::memory_order_relaxed);
    row->charged_tokens.fetch_add(
        static_cast<uint64_t>(c.charge.prompt_tokens + c.charge.completion_tokens),
        std::memory_order_relaxed);
  }
  return PhaseResult::kRespond;
}

}  // namespace

boost::asio::awaitable<PhaseResult> LookupCache(RequestContext& ctx, ClientLink& client) {
  RequestCacheState& c = ctx.cache;
  const Runtime& rt = *ctx.runtime;
  const CacheConfig& config = rt.config.cache;
  ResponseCache* cache = ctx.worker.shared().cache.get();
  if (!config.enabled || !cache) co_return PhaseResult::kContinue;
  // An unknown model is answered 404 by route; it gets no counters of its own.
  const ModelRoute* route = rt.FindModel(ctx.inspected.model);
  if (!route) co_return PhaseResult::kContinue;
  CacheStats& stats = cache->stats();
  CacheTotals& totals = stats.totals();
  c.row = &stats.Row(ctx.record.tenant, ctx.inspected.model);
  c.outcome = RequestCacheState::Outcome::kBypass;
  const Tenant* tenant = ctx.governance.tenant();
  if (tenant && !tenant->cache) {
    totals.tenant_disabled.fetch_add(1, std::memory_order_relaxed);
    co_return PhaseResult::kContinue;
  }
  const ClientDirectives directives =
      ParseCacheControl(ctx.parser->FindHeader(ctx.base, "cache-control"));
  CacheKeyInput in;
  in.tenant = ctx.record.tenant;
  in.model = ctx.inspected.model;
  in.operation = ctx.inspected.operation;
  in.body = ctx.body;
  in.padding = ctx.padding;
  const CacheBypass bypass = ctx.worker.cache_keys().Build(
      in, CacheRules{config.deterministic_only, config.allow_tools}, c.key);
  if (bypass != CacheBypass::kNone) {
    c.row->bypasses[static_cast<size_t>(bypass)].fetch_add(1, std::memory_order_relaxed);
    co_return PhaseResult::kContinue;
  }
  // Before any wait: the builder's parse belongs to this request only until the next one's Build.
  if (config.semantic.enabled) {
    c.params = ctx.worker.cache_keys().Params() ^ NumbersHash(ctx.inspected.prompt_text);
  }
  c.store = !directives.no_store && !ResponseProcessorsApply(ctx);
  if (directives.no_store) totals.client_no_store.fetch_add(1, std::memory_order_relaxed);
  if (directives.no_cache) {
    totals.client_no_cache.fetch_add(1, std::memory_order_relaxed);
    co_return PhaseResult::kContinue;
  }
  ctx.record.model_slot = route->metrics_slot;
  std::shared_ptr<const CacheEntry> entry;
  const int64_t now = MonotonicNanos();
  switch (cache->memory().Find(c.key, now, entry)) {
    case MemoryStore::Lookup::kHit:
      c.store = false;
      co_return ServeHit(ctx, entry->response);
    case MemoryStore::Lookup::kBusy:
      totals.busy_lookups.fetch_add(1, std::memory_order_relaxed);
      break;
    case MemoryStore::Lookup::kMiss:
      break;
  }
  RedisStore* redis = config.redis_enabled() ? cache->redis() : nullptr;
  if (redis) {
    auto fetched = std::make_shared<CacheEntry>();
    const RedisStore::Result r = co_await redis->Get(
        RedisStore::KeyFor(config.redis.key_prefix, ctx.record.tenant, ctx.inspected.model, c.key),
        std::chrono::duration_cast<std::chrono::milliseconds>(config.redis.timeout).count(),
        fetched->response);
    if (r == RedisStore::Result::kHit) {
      totals.remote_hits.fetch_add(1, std::memory_order_relaxed);
      // Kept in process too, for the rest of the TTL this replica cannot know: its own TTL.
      fetched->tenant.assign(ctx.record.tenant);
      fetched->model.assign(ctx.inspected.model);
      fetched->row = c.row;
      const CachedResponse& answer = fetched->response;
      if (fetched->bytes() <= config.max_entry_bytes) {
        const auto put = cache->memory().Put(c.key, fetched, now + config.ttl.count());
        if (put == MemoryStore::Store::kStored) {
          c.row->stores.fetch_add(1, std::memory_order_relaxed);
        }
      }
      c.store = false;
      co_return ServeHit(ctx, answer);
    }
    (r == RedisStore::Result::kMiss ? totals.remote_misses : totals.remote_errors)
        .fetch_add(1, std::memory_order_relaxed);
  }
  if (config.semantic.enabled && !ctx.inspected.prompt_text.empty()) {
    // A similar prompt with the same other parameters, for the same tenant and served model.
    thread_local semantic::SparseVector sparse;
    cache->Vectorize(ctx.inspected.prompt_text, config.semantic.dimension, sparse, c.vector);
    if (!c.vector.empty()) {
      CacheKey similar;
      float similarity = 0;
      switch (cache->SemanticFor(*c.row, config.semantic)
                  .Find(c.vector, c.params, config.semantic.threshold, similar, similarity)) {
        case SemanticIndex::Result::kFound:
          if (cache->memory().Find(similar, now, entry) == MemoryStore::Lookup::kHit) {
            c.semantic = true;
            totals.ObserveSimilarity(similarity);
            c.store = false;
            co_return ServeHit(ctx, entry->response);
          }
          totals.semantic_stale.fetch_add(1, std::memory_order_relaxed);
          break;
        case SemanticIndex::Result::kBusy:
          totals.semantic_busy.fetch_add(1, std::memory_order_relaxed);
          break;
        case SemanticIndex::Result::kNone:
          break;
      }
    }
  }
  c.outcome = RequestCacheState::Outcome::kMiss;
  c.row->misses.fetch_add(1, std::memory_order_relaxed);
  co_return PhaseResult::kContinue;
}

void StoreCachedAnswer(RequestContext& ctx) {
  RequestCacheState& c = ctx.cache;
  if (!c.store || c.outcome == RequestCacheState::Outcome::kHit) return;
  c.store = false;
  ResponseCache* cache = ctx.worker.shared().cache.get();
  if (!cache || !c.row) return;
  CacheTotals& totals = cache->stats().totals();
  const RequestRecord& rec = ctx.record;
  if (rec.status != 200 || !rec.error_code.empty() || !c.assembly.storable()) {
    totals.not_storable.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const CacheConfig& config = ctx.runtime->config.cache;
  auto entry = std::make_shared<CacheEntry>();
  entry->tenant.assign(rec.tenant);
  entry->model.assign(ctx.inspected.model);
  entry->row = c.row;
  CachedResponse& r = entry->response;
  r.operation = ctx.inspected.operation;
  r.model = std::move(c.assembly.model);
  if (r.model.empty()) r.model.assign(ctx.inspected.model);
  r.content = std::move(c.assembly.content);
  r.finish_reason = std::move(c.assembly.finish_reason);
  r.prompt_tokens = rec.usage.prompt_tokens >= 0 ? rec.usage.prompt_tokens : ctx.prompt_tokens;
  r.completion_tokens =
      rec.usage.completion_tokens >= 0 ? rec.usage.completion_tokens : rec.stream_events;
  const int64_t now = MonotonicNanos();
  r.generation_ns = now - rec.start_ns;
  if (entry->bytes() > config.max_entry_bytes) {
    totals.too_large.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (RedisStore* redis = config.redis_enabled() ? cache->redis() : nullptr) {
    const bool queued = redis->Set(
        RedisStore::KeyFor(config.redis.key_prefix, rec.tenant, ctx.inspected.model, c.key),
        EncodeCachedResponse(r),
        std::chrono::duration_cast<std::chrono::milliseconds>(config.ttl).count());
    (queued ? totals.remote_stores : totals.remote_errors).fetch_add(1, std::memory_order_relaxed);
  }
  switch (cache->memory().Put(c.key, std::move(entry), now + config.ttl.count())) {
    case MemoryStore::Store::kStored:
      c.row->stores.fetch_add(1, std::memory_order_relaxed);
      if (config.semantic.enabled && !c.vector.empty()) {
        switch (cache->SemanticFor(*c.row, config.semantic).Insert(c.vector, c.params, c.key)) {
          case SemanticIndex::Add::kBusy:
            totals.semantic_busy.fetch_add(1, std::memory_order_relaxed);
            break;
          case SemanticIndex::Add::kFull:
            totals.semantic_full.fetch_add(1, std::memory_order_relaxed);
            break;
          case SemanticIndex::Add::kAdded:
            break;
        }
      }
      break;
    case MemoryStore::Store::kTooLarge:
      totals.too_large.fetch_add(1, std::memory_order_relaxed);
      break;
    case MemoryStore::Store::kBusy:
      totals.busy_stores.fetch_add(1, std::memory_order_relaxed);
      break;
  }
}

}  // namespace tokenway
