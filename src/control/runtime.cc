#include "control/runtime.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

#include "common/json_writer.h"
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

void AppendModelObject(std::string& o, const ModelConfig& m, int64_t created) {
  o.append("{\"id\":");
  AppendJsonString(o, m.name);
  o.append(",\"object\":\"model\",\"created\":");
  o.append(std::to_string(created));
  o.append(",\"owned_by\":\"tokenway\",\"root\":");
  AppendJsonString(o, m.parent.empty() ? m.name : m.parent);
  o.append(",\"parent\":");
  if (m.parent.empty()) {
    o.append("null");
  } else {
    AppendJsonString(o, m.parent);
  }
  o.append("}");
}

}  // namespace

StatusOr<std::shared_ptr<const Runtime>> BuildRuntime(const GatewayConfig& config,
                                                      EndpointRegistry& endpoints,
                                                      ModelSlots& slots, uint64_t generation,
                                                      int64_t created) {
  auto rt = std::make_shared<Runtime>();
  rt->config = config;
  rt->generation = generation;
  std::unordered_map<std::string, const Pool*> by_name;
  for (const auto& pc : config.pools) {
    auto pool = std::make_unique<Pool>();
    pool->name = pc.name;
    if (!ParseEngineKind(pc.engine, pool->engine)) {
      return Status::Error("pool '" + pc.name + "': unknown engine " + pc.engine);
    }
    if (pc.scheduler.enabled) {
      pool->session_header = pc.scheduler.session_header;
      pool->picker = std::make_unique<SchedulerPicker>(
          pc.scheduler, static_cast<uint32_t>(pc.endpoints.size()),
          std::chrono::duration_cast<std::chrono::nanoseconds>(config.engine_metrics.stale_after)
              .count());
    } else {
      pool->picker = MakePicker(pc.policy);
    }
    if (!pool->picker) return Status::Error("pool '" + pc.name + "': unknown policy " + pc.policy);
    for (const auto& ec : pc.endpoints) {
      auto address = Resolve(ec);
      if (!address.ok()) return address.status();
      PoolEndpoint pe;
      pe.url = ec.url;
      pe.host_header = ec.host + ":" + std::to_string(ec.port);
      pe.address = *address;
      pe.state = endpoints.Get(ec.url);
      if (!ParseEngineKind(EffectiveEngine(pc, ec), pe.engine)) {
        return Status::Error("endpoint '" + ec.url + "': unknown engine " + ec.engine);
      }
      pe.accelerator = ec.accelerator;
      pe.capacity = EffectiveCapacity(pc, ec);
      pool->endpoints.push_back(std::move(pe));
    }
    by_name[pool->name] = pool.get();
    rt->pools.push_back(std::move(pool));
  }
  rt->models_json = "{\"object\":\"list\",\"data\":[";
  bool first = true;
  for (const auto& mc : config.models) {
    ModelRoute route;
    route.name = mc.name;
    route.pool = by_name.at(mc.pool);
    route.metrics_slot = slots.SlotFor(mc.name);
    rt->models.emplace(mc.name, route);
    if (!first) rt->models_json.push_back(',');
    first = false;
    AppendModelObject(rt->models_json, mc, created);
    std::string one;
    AppendModelObject(one, mc, created);
    rt->model_json.emplace(mc.name, std::move(one));
  }
  rt->models_json.append("]}");
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
