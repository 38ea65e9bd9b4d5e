#include "gateway/keda_scaler.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>

#include "common/scope_exit.h"
#include "externalscaler/externalscaler.grpc.pb.h"
#include "telemetry/metrics.h"

namespace tokenway {

namespace {

constexpr std::array<std::string_view, static_cast<size_t>(ScalerMetric::kCount)> kMetricNames = {
    "desired_replicas", "queue_depth", "output_tokens_per_second", "input_tokens_per_second",
    "saturation"};

constexpr std::array<std::string_view, static_cast<size_t>(KedaScaler::Method::kCount)>
    kMethodNames = {"IsActive", "StreamIsActive", "GetMetricSpec", "GetMetrics"};

constexpr std::array<std::string_view, static_cast<size_t>(KedaScaler::Outcome::kCount)>
    kOutcomeNames = {"ok", "not_found", "invalid_argument"};

// How often an open StreamIsActive looks at its pool again.
constexpr std::chrono::milliseconds kStreamCheckPeriod{200};

std::string KnownMetrics() {
  std::string out;
  for (std::string_view name : kMetricNames) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

// KEDA's deprecated integer fields; a huge target or value saturates instead of overflowing.
int64_t Rounded(double value) {
  return std::llround(std::clamp(value, 0.0, 1e15));
}

// Only the keys the scaler reads; KEDA sends the whole trigger metadata (scalerAddress, ...).
std::map<std::string, std::string> MetadataOf(const externalscaler::ScaledObjectRef& ref) {
  std::map<std::string, std::string> out;
  for (const char* key : {"pool", "metric", "target"}) {
    auto it = ref.scalermetadata().find(key);
    if (it != ref.scalermetadata().end()) out.emplace(key, it->second);
  }
  return out;
}

}  // namespace

std::string_view ScalerMetricName(ScalerMetric metric) {
  return kMetricNames[static_cast<size_t>(metric)];
}

double DefaultScalerTarget(ScalerMetric metric) {
  switch (metric) {
    case ScalerMetric::kDesiredReplicas:
      return 1;
    case ScalerMetric::kQueueDepth:
      return 4;
    case ScalerMetric::kOutputTokensPerSecond:
      return 1000;
    case ScalerMetric::kInputTokensPerSecond:
      return 8000;
    case ScalerMetric::kSaturation:
    case ScalerMetric::kCount:
      break;
  }
  return 0.75;
}

double ScalerMetricValue(const PoolScalingSignals& s, ScalerMetric metric) {
  switch (metric) {
    case ScalerMetric::kDesiredReplicas:
      return s.desired_replicas;
    case ScalerMetric::kQueueDepth:
      return s.queue_depth;
    case ScalerMetric::kOutputTokensPerSecond:
      return s.output_tokens_per_second;
    case ScalerMetric::kInputTokensPerSecond:
      return s.input_tokens_per_second;
    case ScalerMetric::kSaturation:
    case ScalerMetric::kCount:
      break;
  }
  return s.saturation;
}

bool PoolIsActive(const PoolScalingSignals& s, int64_t waiting_now) {
  return waiting_now > 0 || s.in_flight > 0 || s.queue_depth > 0 || s.input_tokens_per_second > 0 ||
         s.output_tokens_per_second > 0;
}

StatusOr<ScalerQuery> ParseScalerQuery(const std::map<std::string, std::string>& metadata,
                                       std::string_view object_name) {
  ScalerQuery q;
  auto pool = metadata.find("pool");
  q.pool = pool != metadata.end() ? pool->second : std::string(object_name);
  if (q.pool.empty()) {
    return Status::Error(
        "no pool: set the trigger's metadata `pool` (or name the ScaledObject after the pool)");
  }
  if (auto m = metadata.find("metric"); m != metadata.end()) {
    auto it = std::find(kMetricNames.begin(), kMetricNames.end(), m->second);
    if (it == kMetricNames.end()) {
      return Status::Error("metadata metric '" + m->second +
                           "' is unknown (known: " + KnownMetrics() + ")");
    }
    q.metric = static_cast<ScalerMetric>(it - kMetricNames.begin());
  }
  q.target = DefaultScalerTarget(q.metric);
  if (auto t = metadata.find("target"); t != metadata.end()) {
    const std::string& text = t->second;
    double v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() ||
        !std::isfinite(v) || v <= 0) {
      return Status::Error("metadata target '" + text + "' must be a positive number");
    }
    q.target = v;
  }
  std::string raw = q.pool + "-" + std::string(ScalerMetricName(q.metric));
  q.metric_name.reserve(raw.size());
  for (char c : raw) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    q.metric_name.push_back(keep ? c : '-');
  }
  return q;
}

// The gRPC service; every method runs on a gRPC thread.
class KedaScaler::Service final : public externalscaler::ExternalScaler::Service {
 public:
  explicit Service(KedaScaler& scaler) : scaler_(scaler) {}

  grpc::Status IsActive(grpc::ServerContext*, const externalscaler::ScaledObjectRef* ref,
                        externalscaler::IsActiveResponse* out) override {
    Answer a = scaler_.Lookup(MetadataOf(*ref), ref->name(), Method::kIsActive);
    if (a.outcome != Outcome::kOk) return ToGrpc(a);
    out->set_result(PoolIsActive(a.signals, a.waiting_now));
    return grpc::Status::OK;
  }

  grpc::Status StreamIsActive(
      grpc::ServerContext* context, const externalscaler::ScaledObjectRef* ref,
      grpc::ServerWriter<externalscaler::IsActiveResponse>* writer) override {
    Answer a = scaler_.Lookup(MetadataOf(*ref), ref->name(), Method::kStreamIsActive);
    if (a.outcome != Outcome::kOk) return ToGrpc(a);
    scaler_.open_streams_.fetch_add(1, std::memory_order_relaxed);
    ScopeExit closed([this] { scaler_.open_streams_.fetch_sub(1, std::memory_order_relaxed); });
    PoolScalingSignals signals = std::move(a.signals);
    int64_t waiting = a.waiting_now;
    bool sent = false;
    bool last = false;
    for (;;) {
      bool active = PoolIsActive(signals, waiting);
      if (!sent || active != last) {
        externalscaler::IsActiveResponse out;
        out.set_result(active);
        if (!writer->Write(out)) return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
        sent = true;
        last = active;
      }
      if (!scaler_.WaitNextCheck(kStreamCheckPeriod)) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "tokenway is stopping");
      }
      if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      auto now = scaler_.Current(a.query.pool);
      if (!now) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND,
                            "pool '" + a.query.pool + "' was removed from the configuration");
      }
      signals = std::move(now->first);
      waiting = now->second;
    }
  }

  grpc::Status GetMetricSpec(grpc::ServerContext*, const externalscaler::ScaledObjectRef* ref,
                             externalscaler::GetMetricSpecResponse* out) override {
    Answer a = scaler_.Lookup(MetadataOf(*ref), ref->name(), Method::kGetMetricSpec);
    if (a.outcome != Outcome::kOk) return ToGrpc(a);
    externalscaler::MetricSpec* spec = out->add_metricspecs();
    spec->set_metricname(a.query.metric_name);
    // Older KEDA reads only the integer; it must not be 0 (an invalid HPA target).
    spec->set_targetsize(std::max<int64_t>(1, Rounded(a.query.target)));
    spec->set_targetsizefloat(a.query.target);
    return grpc::Status::OK;
  }

  grpc::Status GetMetrics(grpc::ServerContext*, const externalscaler::GetMetricsRequest* request,
                          externalscaler::GetMetricsResponse* out) override {
    const externalscaler::ScaledObjectRef& ref = request->scaledobjectref();
    Answer a = scaler_.Lookup(MetadataOf(ref), ref.name(), Method::kGetMetrics);
    if (a.outcome != Outcome::kOk) return ToGrpc(a);
    double value = ScalerMetricValue(a.signals, a.query.metric);
    externalscaler::MetricValue* v = out->add_metricvalues();
    v->set_metricname(request->metricname().empty() ? a.query.metric_name : request->metricname());
    v->set_metricvalue(Rounded(value));
    v->set_metricvaluefloat(value);
    return grpc::Status::OK;
  }

 private:
  static grpc::Status ToGrpc(const Answer& a) {
    return grpc::Status(a.outcome == Outcome::kNotFound ? grpc::StatusCode::NOT_FOUND
                                                        : grpc::StatusCode::INVALID_ARGUMENT,
                        a.error);
  }

  KedaScaler& scaler_;
};

KedaScaler::KedaScaler(const ScalingSignals& signals, std::vector<const WorkerMetrics*> workers)
    : signals_(signals), workers_(std::move(workers)) {}

KedaScaler::~KedaScaler() {
  Stop();
}

StatusOr<uint16_t> KedaScaler::Start(const std::string& listen) {
  service_ = std::make_unique<Service>(*this);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service_.get());
  // A second process on the same port must fail to bind, not share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(64 * 1024);  // a ScaledObjectRef is a few hundred bytes
  // Each open StreamIsActive holds a thread; beyond the quota gRPC answers RESOURCE_EXHAUSTED.
  grpc::ResourceQuota quota("tokenway-keda");
  quota.SetMaxThreads(64);
  builder.SetResourceQuota(quota);
  // Idle polling threads look up this often; it bounds how long Stop() waits for them.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::CQ_TIMEOUT_MSEC, 100);
  server_ = builder.BuildAndStart();
  if (!server_ || port <= 0) {
    server_.reset();
    return Status::Error("autoscaling.keda.listen: cannot listen on " + listen +
                         " (address in use or not local)");
  }
  return static_cast<uint16_t>(port);
}

void KedaScaler::Stop() {
  {
    std::lock_guard lock(stop_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (server_) {
    // Streams see `stopping_` within one wake-up; the deadline only bounds a stuck handler.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
    server_.reset();
  }
}

bool KedaScaler::WaitNextCheck(std::chrono::milliseconds period) const {
  std::unique_lock lock(stop_mu_);
  return !stop_cv_.wait_for(lock, period, [this] { return stopping_; });
}

int64_t KedaScaler::WaitingForEndpoint(uint16_t pool_slot) const {
  int64_t waiting = 0;
  for (const WorkerMetrics* w : workers_) {
    waiting += w->pools[pool_slot].waiting_for_endpoint.load(std::memory_order_relaxed);
  }
  return std::max<int64_t>(waiting, 0);
}

std::optional<std::pair<PoolScalingSignals, int64_t>> KedaScaler::Current(
    const std::string& pool) const {
  auto signals = signals_.Find(pool);
  if (!signals) return std::nullopt;
  int64_t waiting = WaitingForEndpoint(signals->metrics_slot);
  return std::make_pair(std::move(*signals), waiting);
}

KedaScaler::Answer KedaScaler::Lookup(const std::map<std::string, std::string>& metadata,
                                      std::string_view object_name, Method method) const {
  Answer a;
  auto query = ParseScalerQuery(metadata, object_name);
  if (!query.ok()) {
    a.outcome = Outcome::kInvalidArgument;
    a.error = query.status().message();
  } else {
    a.query = std::move(*query);
    auto now = Current(a.query.pool);
    if (now) {
      a.signals = std::move(now->first);
      a.waiting_now = now->second;
    } else {
      a.outcome = Outcome::kNotFound;
      std::string known;
      for (const PoolScalingSignals& s : signals_.Current()) {
        known += (known.empty() ? "" : ", ") + s.pool;
      }
      a.error = "pool '" + a.query.pool +
                "' is not configured in this gateway (pools: " + (known.empty() ? "none" : known) +
                ")";
    }
  }
  requests_[static_cast<size_t>(method)][static_cast<size_t>(a.outcome)].fetch_add(
      1, std::memory_order_relaxed);
  return a;
}

void KedaScaler::RenderMetrics(PrometheusText& t) const {
  t.Family("tokenway_keda_requests_total", "counter",
           "KEDA external-scaler calls by method and outcome (ok, not_found: unknown pool, "
           "invalid_argument: bad trigger metadata).");
  for (size_t m = 0; m < kMethodNames.size(); ++m) {
    for (size_t o = 0; o < kOutcomeNames.size(); ++o) {
      t.Sample("tokenway_keda_requests_total",
               {{"method", kMethodNames[m]}, {"outcome", kOutcomeNames[o]}},
               requests_[m][o].load(std::memory_order_relaxed));
    }
  }
  t.Family("tokenway_keda_streams", "gauge", "Open StreamIsActive streams.");
  t.Sample("tokenway_keda_streams", {},
           static_cast<double>(open_streams_.load(std::memory_order_relaxed)));
}

}  // namespace tokenway
