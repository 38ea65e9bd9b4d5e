#include "gateway/gateway.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <ctime>
#include <memory>
#include <thread>
#include <vector>

#include "common/duration.h"
#include "common/file_stamp.h"
#include "common/log.h"
#include "control/discovery.h"
#include "control/engine_scraper.h"
#include "control/health_checker.h"
#include "control/rollout_versions.h"
#include "control/runtime.h"
#include "control/scaling_signals.h"
#include "gateway/admin_server.h"
#include "gateway/epp_server.h"
#include "gateway/keda_scaler.h"
#include "gateway/worker.h"
#include "governance/limiter.h"
#include "rollout/rollout_controller.h"

namespace tokenway {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

StatusOr<tcp::endpoint> ParseListenAddress(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return Status::Error("'" + text + "' must be host:port");
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "*") host = "0.0.0.0";
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return Status::Error("'" + text + "': '" + host + "' is not an IP address");
  int port = 0;
  try {
    port = std::stoi(text.substr(colon + 1));
  } catch (...) {
    return Status::Error("'" + text + "' has an invalid port");
  }
  if (port < 0 || port > 65535) return Status::Error("'" + text + "' has an invalid port");
  return tcp::endpoint(address, static_cast<uint16_t>(port));
}

// The exporter is built once at start; only the sampling settings follow a reload.
bool TracingNeedsRestart(const TracingConfig& a, const TracingConfig& b) {
  return a.enabled != b.enabled || a.endpoint != b.endpoint || a.service_name != b.service_name ||
         a.batch_size != b.batch_size || a.batch_interval != b.batch_interval ||
         a.queue_size != b.queue_size || a.timeout != b.timeout;
}

class Process {
 public:
  explicit Process(GatewayOptions options) : options_(std::move(options)) {}

  int Run() {
    GatewayConfig config = options_.config;
    ApplyOverrides(config);
    std::string error;
    shared_.access_log = AccessLogSink::Open(config.access_log.path, error);
    if (!shared_.access_log) {
      LogError("access_log.path: " + error);
      return 1;
    }
    auto governance = BuildGovernance(config, true);
    if (!governance.ok()) {
      LogError(governance.status().message());
      return 1;
    }
    discovery_ = std::make_unique<Discovery>(ioc_, [this] { PublishDiscovered(); });
    if (auto st = discovery_->Configure(config); !st.ok()) {
      LogError(st.message());
      return 1;
    }
    base_config_ = config;
    auto rt = BuildRuntime(discovery_->WithEndpoints(config), endpoints_, metric_slots_,
                           ++generation_, std::time(nullptr), &pool_states_, *governance);
    if (!rt.ok()) {
      LogError(rt.status().message());
      return 1;
    }
    current_ = *rt;
    // The response cache outlives reloads (which may turn it on or change its bounds).
    shared_.cache = std::make_shared<ResponseCache>(config.cache);
    // The HTTP front door may be off when the endpoint-picker front door serves.
    const bool listen_http = !config.listen.empty();
    auto listen = ParseListenAddress(listen_http ? config.listen : "127.0.0.1:0");
    if (!listen.ok()) {
      LogError("listen: " + listen.status().message());
      return 1;
    }
    auto admin_at = ParseListenAddress(config.admin);
    if (!admin_at.ok()) {
      LogError("admin: " + admin_at.status().message());
      return 1;
    }
    uint32_t n =
        config.workers ? config.workers : std::max(1u, std::thread::hardware_concurrency());
    if (config.tracing.enabled) {
      OtlpExporterOptions o;
      o.endpoint = config.tracing.endpoint;
      o.service_name = config.tracing.service_name;
      o.workers = n;
      o.batch_size = config.tracing.batch_size;
      o.batch_interval = config.tracing.batch_interval;
      o.queue_size = config.tracing.queue_size;
      o.timeout = config.tracing.timeout;
      auto exporter = OtlpExporter::Create(std::move(o));
      if (!exporter.ok()) {
        LogError("tracing.endpoint: " + exporter.status().message());
        return 1;
      }
      shared_.traces = std::move(*exporter);
    }
    tcp::endpoint bound;
    try {
      for (uint32_t i = 0; i < n; ++i) {
        metrics_.push_back(std::make_unique<WorkerMetrics>());
        workers_.push_back(std::make_unique<Worker>(i, shared_, *metrics_.back()));
        if (listen_http) bound = workers_.back()->Listen(i == 0 ? *listen : bound);
      }
    } catch (const boost::system::system_error& e) {
      LogError("cannot listen on " + config.listen + ": " + e.code().message());
      return 1;
    }
    // Rollouts set their versions' weights before the first request is served.
    std::vector<WorkerMetrics*> figures;
    for (auto& m : metrics_) figures.push_back(m.get());
    rollout_backend_ = std::make_unique<VersionsRolloutBackend>(
        pool_states_.versions(), [this] { return current_; }, std::move(figures));
    rollouts_ = std::make_unique<RolloutController>(*rollout_backend_);
    rollouts_->Configure(config.rollouts, UnixMillis());
    AdminView view;
    view.shared = &shared_;
    for (auto& m : metrics_) view.metrics.push_back(m.get());
    view.slots = &metric_slots_;
    view.runtime = [this] { return current_; };
    view.reloads_ok = &reloads_ok_;
    view.reloads_failed = &reloads_failed_;
    view.scaling = &scaling_;
    view.discovery = discovery_.get();
    view.rollouts = rollouts_.get();
    // The KEDA scaler answers from the first signals on, so they exist before it listens.
    UpdateScalingSignals();
    if (config.keda.enabled) {
      std::vector<const WorkerMetrics*> counts(view.metrics.begin(), view.metrics.end());
      keda_ = std::make_unique<KedaScaler>(scaling_, std::move(counts));
      auto port = keda_->Start(config.keda.listen);
      if (!port.ok()) {
        LogError(port.status().message());
        return 1;
      }
      view.keda = keda_.get();
      std::string host = config.keda.listen.substr(0, config.keda.listen.rfind(':'));
      LogInfo("KEDA external scaler on " + host + ":" + std::to_string(*port));
    }
    admin_ = std::make_unique<AdminServer>(ioc_, view);
    tcp::endpoint admin_bound;
    try {
      admin_bound = admin_->Listen(*admin_at);
    } catch (const boost::system::system_error& e) {
      LogError("cannot listen on admin " + config.admin + ": " + e.code().message());
      return 1;
    }
    for (auto& w : workers_) w->Start(current_);
    std::string epp_note;
    if (config.epp.enabled()) {
      std::vector<Worker*> serving;
      for (auto& w : workers_) serving.push_back(w.get());
      epp_ = std::make_unique<EppServer>(std::move(serving));
      // A BUFFERED request or response body arrives as one message: allow the larger of the
      // two limits plus framing.
      const uint64_t largest =
          std::max(config.limits.max_body_bytes, config.limits.max_response_bytes);
      auto port = epp_->Start(config.epp, largest + 64 * 1024);
      if (!port.ok()) {
        LogError(port.status().message());
        epp_.reset();
        for (auto& w : workers_) w->Stop();
        return 1;
      }
      epp_note = "; endpoint picker (ext_proc) on port " + std::to_string(*port);
      UpdateEppReadiness();
    }
    admin_->Start();
    health_ = std::make_unique<HealthChecker>(ioc_, [this] { return current_; });
    health_->Start();
    scraper_ = std::make_unique<EngineScraper>(ioc_, [this] { return current_; });
    scraper_->Start();
    KickFlows();
    TickRollouts();
    if (!options_.config_path.empty()) {
      stamp_ = FileStamp::Of(options_.config_path);
      PollConfigFile();
    }
    signals_.add(SIGINT);
    signals_.add(SIGTERM);
    signals_.add(SIGHUP);
    WaitSignal();
    LogInfo(
        (listen_http
             ? "listening on " + bound.address().to_string() + ":" + std::to_string(bound.port())
             : std::string("no HTTP listener")) +
        " with " + std::to_string(n) + " workers; admin on " + admin_bound.address().to_string() +
        ":" + std::to_string(admin_bound.port()) + epp_note);
    ioc_.run();
    if (keda_) keda_->Stop();  // open StreamIsActive streams end with UNAVAILABLE
    if (epp_) epp_->Stop();    // while the workers still run the streams' last steps
    discovery_->Stop();
    governance_->Stop();  // before the workers: no Redis answer may outlive their event loops
    if (shared_.cache) shared_.cache->Stop();  // the same for the response cache's Redis store
    for (auto& w : workers_) w->Stop();
    pool_states_.DropAll();
    workers_.clear();
    if (shared_.traces) shared_.traces->Stop();  // posts the spans still queued
    LogInfo("stopped");
    return 0;
  }

 private:
  void ApplyOverrides(GatewayConfig& c) const {
    if (!options_.listen_override.empty()) c.listen = options_.listen_override;
    if (!options_.admin_override.empty()) c.admin = options_.admin_override;
    if (!options_.epp_listen_override.empty()) c.epp.listen = options_.epp_listen_override;
    if (options_.workers_override >= 0)
      c.workers = static_cast<uint32_t>(options_.workers_override);
    if (options_.disable_access_log) c.access_log.enabled = false;
  }

  void WaitSignal() {
    signals_.async_wait([this](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        Reload("SIGHUP");
        WaitSignal();
        return;
      }
      if (shared_.draining.load()) {
        LogWarn("second stop signal: exiting without waiting for in-flight requests");
        ioc_.stop();
        return;
      }
      BeginDrain();
      WaitSignal();
    });
  }

  void BeginDrain() {
    shared_.draining.store(true);
    if (epp_) epp_->BeginDrain();
    LogInfo("draining: stopped accepting; waiting for in-flight requests");
    for (auto& w : workers_) w->BeginDrain();
    drain_deadline_ = MonotonicNanos() + current_->config.drain_timeout.count();
    CheckDrained();
  }

  void CheckDrained() {
    int64_t in_flight = 0;
    for (auto& m : metrics_) in_flight += m->in_flight.load();
    if (in_flight == 0 || MonotonicNanos() >= drain_deadline_) {
      if (in_flight) {
        LogWarn("drain timeout with " + std::to_string(in_flight) + " requests in flight");
      }
      admin_->Stop();
      ioc_.stop();
      return;
    }
    drain_timer_.expires_after(std::chrono::milliseconds(20));
    drain_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) CheckDrained();
    });
  }

  void Reload(const std::string& why) {
    if (options_.config_path.empty()) {
      LogWarn("reload requested (" + why + ") but tokenway runs from flags; nothing to reload");
      return;
    }
    auto loaded = LoadConfigFile(options_.config_path);
    if (!loaded.ok()) {
      reloads_failed_.fetch_add(1);
      LogError("reload rejected, keeping the running configuration: " + loaded.status().message());
      return;
    }
    GatewayConfig config = *loaded;
    ApplyOverrides(config);
    const GatewayConfig& running = current_->config;
    if (config.listen != running.listen || config.admin != running.admin ||
        config.workers != running.workers || config.access_log.path != running.access_log.path ||
        config.epp.listen != running.epp.listen || config.epp.cert_file != running.epp.cert_file ||
        config.epp.key_file != running.epp.key_file ||
        config.epp.max_streams != running.epp.max_streams) {
      LogWarn(
          "listen, admin, workers, access_log.path and epp listen, tls and max_streams change "
          "only on restart; keeping the running values");
      config.listen = running.listen;
      config.admin = running.admin;
      config.workers = running.workers;
      config.access_log.path = running.access_log.path;
      config.epp.listen = running.epp.listen;
      config.epp.cert_file = running.epp.cert_file;
      config.epp.key_file = running.epp.key_file;
      config.epp.max_streams = running.epp.max_streams;
    }
    if (config.keda.enabled != running.keda.enabled || config.keda.listen != running.keda.listen) {
      LogWarn("autoscaling.keda changes only on restart; keeping the running value");
      config.keda = running.keda;
    }
    if (TracingNeedsRestart(config.tracing, running.tracing)) {
      LogWarn(
          "tracing settings other than sample_ratio and provider_name change only on restart; "
          "keeping the running values");
      config.tracing.enabled = running.tracing.enabled;
      config.tracing.endpoint = running.tracing.endpoint;
      config.tracing.service_name = running.tracing.service_name;
      config.tracing.batch_size = running.tracing.batch_size;
      config.tracing.batch_interval = running.tracing.batch_interval;
      config.tracing.queue_size = running.tracing.queue_size;
      config.tracing.timeout = running.tracing.timeout;
    }
    auto governance = BuildGovernance(config, false);
    if (!governance.ok()) {
      reloads_failed_.fetch_add(1);
      LogError("reload rejected, keeping the running configuration: " +
               governance.status().message());
      return;
    }
    if (auto st = discovery_->Configure(config); !st.ok()) {
      reloads_failed_.fetch_add(1);
      LogError("reload rejected, keeping the running configuration: " + st.message());
      return;
    }
    auto rt = BuildRuntime(discovery_->WithEndpoints(config), endpoints_, metric_slots_,
                           generation_ + 1, std::time(nullptr), &pool_states_, *governance);
    if (!rt.ok()) {
      reloads_failed_.fetch_add(1);
      LogError("reload rejected, keeping the running configuration: " + rt.status().message());
      // Discovery already follows the new file; put it back on the running one.
      (void)discovery_->Configure(base_config_);
      return;
    }
    base_config_ = config;
    ++generation_;
    current_ = *rt;
    // The new snapshot's version cells exist now; the rollouts' weights are in them before any
    // worker serves from it.
    rollouts_->Configure(config.rollouts, UnixMillis());
    shared_.cache->Apply(config.cache);
    for (auto& w : workers_) w->Publish(current_);
    reloads_ok_.fetch_add(1);
    LogInfo("configuration reloaded (" + why + "), generation " + std::to_string(generation_));
  }

  // Flow control is driven by completions and admissions on the workers; this periodic kick
  // also releases queued requests when room appears any other way (fresh engine signals, an
  // endpoint recovering, a reload adding endpoints).
  void KickFlows() {
    flow_timer_.expires_after(std::chrono::milliseconds(10));
    flow_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      int64_t now = MonotonicNanos();
      for (const auto& pool : current_->pools) {
        if (pool->flow) pool->flow->Kick(pool->flow_view(), now);
      }
      KickFlows();
    });
  }

  // The endpoint picker's readiness (grpc.health.v1 "readiness") follows /readyz.
  void UpdateEppReadiness() {
    std::string reason;
    epp_->SetReady(admin_->Ready(reason));
    epp_timer_.expires_after(std::chrono::milliseconds(250));
    epp_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) UpdateEppReadiness();
    });
  }

  void UpdateScalingSignals() {
    std::vector<WorkerMetrics*> workers;
    for (auto& m : metrics_) workers.push_back(m.get());
    scaling_.Update(*current_, workers, MonotonicNanos());
    scaling_timer_.expires_after(std::chrono::seconds(1));
    scaling_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) UpdateScalingSignals();
    });
  }

  // The rollouts' analysis round (rollout/rollout_controller.h), every rollouts.tick.
  void TickRollouts() {
    rollouts_->Tick(UnixMillis());
    rollout_timer_.expires_after(current_->config.rollouts.tick);
    rollout_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) TickRollouts();
    });
  }

  void PollConfigFile() {
    poll_timer_.expires_after(current_->config.reload_poll_interval);
    poll_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      FileStamp now = FileStamp::Of(options_.config_path);
      if (now != stamp_) {
        stamp_ = now;
        if (now.exists) Reload("file changed");
      } else if (current_->governance &&
                 governance_->KeysFileChanged(current_->config.governance)) {
        ReloadKeys();
      }
      PollConfigFile();
    });
  }

  // Tenants and keys for `config` (null when governance is off); see GovernanceState::Build.
  StatusOr<std::shared_ptr<const GovernanceSnapshot>> BuildGovernance(
      const GatewayConfig& config, bool startup, bool* keys_rejected = nullptr) {
    if (!config.governance.enabled) return std::shared_ptr<const GovernanceSnapshot>();
    std::string warning;
    auto snapshot = governance_->Build(config.governance, startup, warning);
    if (!warning.empty()) LogError(warning);
    if (keys_rejected) *keys_rejected = !warning.empty();
    return snapshot;
  }

  // The keys file changed: the same configuration with the new keys (or, if the file is
  // invalid, the old ones; GovernanceState counts and reports it).
  void ReloadKeys() {
    bool rejected = false;
    auto governance = BuildGovernance(current_->config, false, &rejected);
    if (!governance.ok()) {
      LogError("keys reload failed: " + governance.status().message());
      return;
    }
    if (rejected) return;  // the running keys stay
    auto rt = BuildRuntime(discovery_->WithEndpoints(base_config_), endpoints_, metric_slots_,
                           generation_ + 1, std::time(nullptr), &pool_states_, *governance);
    if (!rt.ok()) {
      LogError("keys reload failed: " + rt.status().message());
      return;
    }
    ++generation_;
    current_ = *rt;
    for (auto& w : workers_) w->Publish(current_);
    LogInfo("keys file reloaded: " + std::to_string((*governance)->table->key_count()) + " keys");
  }

  // Discovery changed a pool's endpoints: the running configuration with the new lists, as a new
  // snapshot (endpoint state, flow controllers and prefix affinity carry over by URL).
  void PublishDiscovered() {
    if (shared_.draining.load()) return;
    auto rt =
        BuildRuntime(discovery_->WithEndpoints(base_config_), endpoints_, metric_slots_,
                     generation_ + 1, std::time(nullptr), &pool_states_, current_->governance);
    if (!rt.ok()) {
      LogError("discovered endpoints not applied: " + rt.status().message());
      return;
    }
    ++generation_;
    current_ = *rt;
    for (auto& w : workers_) w->Publish(current_);
    // Endpoints of pods gone earlier, now that no snapshot holds them.
    endpoints_.Prune();
  }

  GatewayOptions options_;
  asio::io_context ioc_{1};
  asio::signal_set signals_{ioc_};
  asio::steady_timer drain_timer_{ioc_};
  asio::steady_timer poll_timer_{ioc_};
  asio::steady_timer flow_timer_{ioc_};
  asio::steady_timer scaling_timer_{ioc_};
  asio::steady_timer epp_timer_{ioc_};
  asio::steady_timer rollout_timer_{ioc_};
  GatewayShared shared_;
  EndpointRegistry endpoints_;
  PoolStateRegistry pool_states_;
  std::shared_ptr<GovernanceState> governance_ = std::make_shared<GovernanceState>();
  MetricSlots metric_slots_;
  ScalingSignals scaling_;
  std::vector<std::unique_ptr<WorkerMetrics>> metrics_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<EppServer> epp_;  // null unless epp.listen is set
  std::unique_ptr<HealthChecker> health_;
  std::unique_ptr<EngineScraper> scraper_;
  std::shared_ptr<const Runtime> current_;
  GatewayConfig base_config_;  // the running configuration as loaded (no discovered endpoints)
  std::unique_ptr<Discovery> discovery_;
  std::unique_ptr<KedaScaler> keda_;  // after scaling_ and metrics_, which it reads
  std::unique_ptr<VersionsRolloutBackend> rollout_backend_;  // reads metrics_, current_
  std::unique_ptr<RolloutController> rollouts_;              // drives rollout_backend_
  std::atomic<uint64_t> reloads_ok_{0};
  std::atomic<uint64_t> reloads_failed_{0};
  uint64_t generation_ = 0;
  int64_t drain_deadline_ = 0;
  FileStamp stamp_;
};

}  // namespace

int RunGateway(GatewayOptions options) {
  Process process(std::move(options));
  return process.Run();
}

}  // namespace tokenway
