#include "control/runtime.h"

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

#include "common/json_writer.h"
#include "control/config_render.h"
#include "routing/picker_registry.h"
#include "routing/scheduler_picker.h"
#include "telemetry/metrics.h"

namespace tokenway {

namespace asio = boost::asio;

std::shared_ptr<EndpointState> EndpointRegistry::Get(const std::string& url) {
  std::lock_guard lock(mu_);
  auto& slot = states_[url];
  if (!slot) slot = std::make_shared<EndpointState>(url);
  return slot;
}

std::vector<std::shared_ptr<EndpointState>> EndpointRegistry::All() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<EndpointState>> out;
  out.reserve(states_.size());
  for (const auto& [url, state] : states_) out.push_back(state);
  return out;
}

size_t EndpointRegistry::Prune() {
  std::lock_guard lock(mu_);
  return std::erase_if(states_, [](const auto& entry) { return entry.second.use_count() == 1; });
}

std::shared_ptr<FlowController> PoolStateRegistry::Flow(const std::string& pool) {
  std::lock_guard lock(mu_);
  auto& slot = flows_[pool];
  if (!slot) slot = std::make_shared<FlowController>(pool);
  return slot;
}

std::shared_ptr<PrefixIndex> PoolStateRegistry::Prefix(const std::string& pool,
                                                       const PrefixIndexConfig& config,
                                                       const std::vector<std::string>& urls) {
  std::lock_guard lock(mu_);
  PrefixEntry& e = prefixes_[pool];
  bool same_config = e.index && e.config.block_bytes == config.block_bytes &&
                     e.config.capacity == config.capacity &&
                     e.config.max_blocks == config.max_blocks;
  if (same_config && e.urls == urls) return e.index;
  // An index of no endpoints (a discovering pool before its first list) holds nothing to keep.
  if (same_config && e.index->endpoints() > 0 &&
      PrefixIndex::CarryFits(*e.index, static_cast<uint32_t>(urls.size()))) {
    // The endpoint list changed (discovery, a reload): each endpoint that stays keeps what it
    // learned, found by URL.
    std::unordered_map<std::string_view, int32_t> was;
    for (size_t i = 0; i < e.urls.size(); ++i) was.emplace(e.urls[i], static_cast<int32_t>(i));
    std::vector<int32_t> carried(urls.size(), -1);
    for (size_t i = 0; i < urls.size(); ++i) {
      if (auto it = was.find(urls[i]); it != was.end()) carried[i] = it->second;
    }
    e.index = std::make_shared<PrefixIndex>(*e.index, carried);
  } else {
    // Other settings, or a pool whose size moved past a factor 2 from the one the table was
    // sized for: a fresh table of the right size.
    e.index = std::make_shared<PrefixIndex>(config, static_cast<uint32_t>(urls.size()));
    e.config = config;
  }
  e.urls = urls;
  return e.index;
}

std::vector<std::shared_ptr<FlowController>> PoolStateRegistry::Flows() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<FlowController>> out;
  for (const auto& [name, c] : flows_) out.push_back(c);
  return out;
}

void PoolStateRegistry::DropAll() {
  for (const auto& c : Flows()) c->DropAll();
}

const RouteVersion* ModelRoute::Split(uint64_t key_hash) const {
  if (versions.empty()) return nullptr;
  std::array<double, kMaxModelVersions> weights;
  std::array<uint64_t, kMaxModelVersions> seeds;
  const size_t n = std::min(versions.size(), kMaxModelVersions);
  for (size_t i = 0; i < n; ++i) {
    weights[i] = versions[i].weight->weight.load(std::memory_order_relaxed);
    seeds[i] = versions[i].seed;
  }
  const int chosen = PickVersion(key_hash, std::span<const double>(weights.data(), n),
                                 std::span<const uint64_t>(seeds.data(), n));
  return &versions[chosen < 0 ? 0 : static_cast<size_t>(chosen)];
}

namespace {

StatusOr<asio::ip::tcp::endpoint> Resolve(const EndpointConfig& ep) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(ep.host, ec);
  if (!ec) return asio::ip::tcp::endpoint(address, ep.port);
  asio::io_context ioc;
  asio::ip::tcp::resolver resolver(ioc);
  auto results = resolver.resolve(ep.host, std::to_string(ep.port), ec);
  if (ec || results.empty()) {
    return Status::Error("cannot resolve '" + ep.host + "' for " + ep.url + ": " + ec.message());
  }
  return results.begin()->endpoint();
}

void WriteModelObject(JsonWriter& w, const ModelConfig& m, int64_t created) {
  w.BeginObject();
  w.Key("id").String(m.name);
  w.Key("object").String("model");
  w.Key("created").Int(created);
  w.Key("owned_by").String("tokenway");
  w.Key("root").String(m.parent.empty() ? m.name : m.parent);
  w.Key("parent");
  if (m.parent.empty()) {
    w.Null();
  } else {
    w.String(m.parent);
  }
  w.EndObject();
}

}  // namespace

StatusOr<std::shared_ptr<const Runtime>> BuildRuntime(
    const GatewayConfig& config, EndpointRegistry& endpoints, MetricSlots& slots,
    uint64_t generation, int64_t created, PoolStateRegistry* pools,
    std::shared_ptr<const GovernanceSnapshot> governance) {
  auto rt = std::make_shared<Runtime>();
  if (config.governance.enabled) rt->governance = std::move(governance);
  rt->config = config;
  rt->generation = generation;
  auto chain = BuildPayloadChain(config.processors);
  if (!chain.ok()) return chain.status();
  rt->payload = std::move(*chain);
  std::unordered_map<std::string, const Pool*> by_name;
  for (const auto& pc : config.pools) {
    auto pool = std::make_unique<Pool>();
    pool->name = pc.name;
    pool->metrics_slot = slots.pools.SlotFor(pc.name);
    if (!ParseEngineKind(pc.engine, pool->engine)) {
      return Status::Error("pool '" + pc.name + "': unknown engine " + pc.engine);
    }
    pool->stale_after_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(config.engine_metrics.stale_after)
            .count();
    if (pc.scheduler.enabled) {
      std::shared_ptr<PrefixIndex> prefix;
      bool wants_prefix =
          std::any_of(pc.scheduler.scorers.begin(), pc.scheduler.scorers.end(),
                      [](const ScorerConfig& s) { return s.name == "prefix-cache"; });
      if (wants_prefix && pools) {
        std::vector<std::string> urls;
        for (const auto& ec : pc.endpoints) urls.push_back(ec.url);
        prefix = pools->Prefix(pc.name, pc.scheduler.prefix, urls);
      }
      pool->session_header = pc.scheduler.session_header;
      pool->predicts_latency = pc.scheduler.PredictsLatency();
      pool->picker = std::make_unique<SchedulerPicker>(
          pc.scheduler, static_cast<uint32_t>(pc.endpoints.size()),
          std::chrono::duration_cast<std::chrono::nanoseconds>(config.engine_metrics.stale_after)
              .count(),
          std::move(prefix));
    } else {
      pool->picker = MakePicker(pc.policy);
    }
    if (!pool->picker) return Status::Error("pool '" + pc.name + "': unknown policy " + pc.policy);
    for (const auto& ec : pc.endpoints) {
      auto address = Resolve(ec);
      if (!address.ok()) return address.status();
      PoolEndpoint pe;
      pe.url = ec.url;
      pe.metrics_slot = slots.endpoints.SlotFor(EndpointSlotKey(pc.name, ec.url));
      pe.host_header = ec.host + ":" + std::to_string(ec.port);
      pe.address = *address;
      pe.ip_port = address->address().is_v6()
                       ? "[" + address->address().to_string() + "]:" + std::to_string(ec.port)
                       : address->address().to_string() + ":" + std::to_string(ec.port);
      pe.state = endpoints.Get(ec.url);
      pool->endpoint_states.push_back(pe.state.get());
      if (!ParseEngineKind(EffectiveEngine(pc, ec), pe.engine)) {
        return Status::Error("endpoint '" + ec.url + "': unknown engine " + ec.engine);
      }
      pe.accelerator = ec.accelerator;
      pe.capacity = EffectiveCapacity(pc, ec);
      pool->endpoints.push_back(std::move(pe));
    }
    // Thresholds are kept for every pool: the scaling signals read them too.
    {
      const FlowControlConfig& fc = pc.flow_control;
      if (fc.enabled) {
        pool->flow = pools ? pools->Flow(pc.name) : std::make_shared<FlowController>(pc.name);
      }
      pool->flow_config = fc;
      pool->autoscaling = pc.autoscaling;
      pool->scale_from_zero = pc.scale_from_zero;
      FlowControlConfig& fs = pool->flow_config;
      fs.use_engine_signals = config.engine_metrics.enabled;
      fs.stale_after_ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(config.engine_metrics.stale_after)
              .count();
    }
    by_name[pool->name] = pool.get();
    rt->pools.push_back(std::move(pool));
  }
  JsonWriter models(rt->models_json);
  models.BeginObject().Key("object").String("list").Key("data").BeginArray();
  // Without a registry (tools, tests) each snapshot's weights start from the configuration.
  VersionWeights local_weights;
  VersionWeights& weights = pools ? pools->versions() : local_weights;
  for (const auto& mc : config.models) {
    if (mc.router.enabled()) {
      std::vector<std::string> embedding_urls;
      if (!mc.router.embeddings.pool.empty()) {
        for (const PoolEndpoint& pe : by_name.at(mc.router.embeddings.pool)->endpoints) {
          embedding_urls.push_back(pe.url + "/v1/embeddings");
        }
      }
      auto router = SemanticRouter::Build(mc.name, mc.router, std::move(embedding_urls));
      if (!router.ok()) return router.status();
      rt->routers.emplace(mc.name, std::move(*router));
    } else {
      ModelRoute route;
      route.name = mc.name;
      route.pool = by_name.at(mc.pool);
      route.metrics_slot = slots.models.SlotFor(mc.name);
      route.priority = mc.priority;
      route.sticky = mc.sticky;
      route.response_model = mc.response_model;
      for (const ModelVersionConfig& vc : mc.versions) {
        RouteVersion v;
        v.name = vc.name;
        v.model = vc.model;
        v.pool = by_name.at(vc.pool);
        v.metrics_slot = slots.versions.SlotFor(VersionSlotKey(mc.name, vc.name));
        v.seed = VersionSeed(vc.name);
        v.weight = weights.Cell(mc.name, vc.name, vc.weight);
        v.match = vc.match;
        if (mc.shadow.enabled() && vc.name == mc.shadow.version) {
          route.shadow = static_cast<int32_t>(route.versions.size());
          route.shadow_percent = mc.shadow.percent;
          route.shadow_max_concurrency = mc.shadow.max_concurrency;
        }
        route.versions.push_back(std::move(v));
      }
      rt->models.emplace(mc.name, route);
    }
    WriteModelObject(models, mc, created);
    std::string one;
    JsonWriter model(one);
    WriteModelObject(model, mc, created);
    rt->model_json.emplace(mc.name, std::move(one));
  }
  models.EndArray().EndObject();
  rt->config_json = RenderConfigJson(config);
  // Last, so that a configuration rejected above leaves the live state alone. Requests still on
  // the previous Runtime see the new capacity at once; it only weighs routing decisions.
  for (const auto& pool : rt->pools) {
    for (const auto& pe : pool->endpoints) {
      pe.state->capacity.store(pe.capacity, std::memory_order_relaxed);
    }
  }
  return std::shared_ptr<const Runtime>(std::move(rt));
}

}  // namespace tokenway
