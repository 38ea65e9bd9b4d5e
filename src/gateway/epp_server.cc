#include "gateway/epp_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <boost/asio/post.hpp>
#include <fstream>
#include <future>
#include <sstream>

#include "gateway/epp_stream.h"
#include "gateway/worker.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace tokenway {

namespace {

using ProcessingRequest = envoy::service::ext_proc::v3::ProcessingRequest;
using ProcessingResponse = envoy::service::ext_proc::v3::ProcessingResponse;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// A stream refused at its start (stream limit, draining): finished at once.
class RefusedStream final : public grpc::ServerBidiReactor<ProcessingRequest, ProcessingResponse> {
 public:
  explicit RefusedStream(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(std::string("epp.tls.") + what + ": cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

class EppServer::ExtProcService final
    : public envoy::service::ext_proc::v3::ExternalProcessor::CallbackService {
 public:
  ExtProcService(EppServer& server, uint32_t max_streams)
      : server_(server), max_streams_(max_streams) {}

  grpc::ServerBidiReactor<ProcessingRequest, ProcessingResponse>* Process(
      grpc::CallbackServerContext* context) override {
    Worker& worker =
        *server_.workers_[next_.fetch_add(1, std::memory_order_relaxed) % server_.workers_.size()];
    if (server_.draining_.load(std::memory_order_relaxed)) {
      return new RefusedStream(grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining"));
    }
    std::atomic<int64_t>& open = server_.shared_->open_streams;
    if (open.fetch_add(1, std::memory_order_relaxed) >= static_cast<int64_t>(max_streams_)) {
      open.fetch_sub(1, std::memory_order_relaxed);
      worker.metrics().Count(EppError::kStreamLimit);
      return new RefusedStream(
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                       "the endpoint picker has epp.max_streams streams open"));
    }
    return new EppStream(worker, server_.shared_, context);
  }

 private:
  EppServer& server_;
  const uint32_t max_streams_;
  std::atomic<uint64_t> next_{0};
};

// One Watch call: the current status, then every change, one write at a time.
class EppServer::HealthWatch final : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  HealthWatch(EppServer& server, std::string service)
      : server_(server), service_(std::move(service)) {
    server_.AddWatch(this);
    Notify();
  }
  // Any thread: sends the service's status if it differs from the last one sent.
  void Notify() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (writing_ || finished_) return;
      const int status = server_.StatusFor(service_);
      if (status == sent_) return;
      sent_ = status;
      writing_ = true;
      response_.set_status(static_cast<HealthCheckResponse::ServingStatus>(status));
    }
    StartWrite(&response_);
  }
  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok) return;  // cancelled; OnCancel finishes
    }
    Notify();  // a change that came during the write
  }
  void OnCancel() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    server_.RemoveWatch(this);
    delete this;
  }

 private:
  EppServer& server_;
  const std::string service_;
  std::mutex mu_;
  HealthCheckResponse response_;
  int sent_ = -1;
  bool writing_ = false;
  bool finished_ = false;
};

class EppServer::HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  explicit HealthService(EppServer& server) : server_(server) {}

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const HealthCheckRequest* request,
                                  HealthCheckResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    const int status = server_.StatusFor(request->service());
    if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
      reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                   "unknown service '" + request->service() + "'"));
    } else {
      response->set_status(static_cast<HealthCheckResponse::ServingStatus>(status));
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }

  grpc::ServerWriteReactor<HealthCheckResponse>* Watch(grpc::CallbackServerContext*,
                                                       const HealthCheckRequest* request) override {
    return new HealthWatch(server_, request->service());
  }

 private:
  EppServer& server_;
};

EppServer::EppServer(std::vector<Worker*> workers)
    : workers_(std::move(workers)), shared_(std::make_shared<EppStreamShared>()) {}

EppServer::~EppServer() {
  Stop();
}

StatusOr<int> EppServer::Start(const EppConfig& config, uint64_t max_message_bytes) {
  if (workers_.empty()) return Status::Error("epp: no workers to serve the streams");
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (!config.cert_file.empty()) {
    auto cert = ReadFile(config.cert_file, "cert_file");
    if (!cert.ok()) return cert.status();
    auto key = ReadFile(config.key_file, "key_file");
    if (!key.ok()) return key.status();
    grpc::SslServerCredentialsOptions options;
    options.pem_key_cert_pairs.push_back({*key, *cert});
    credentials = grpc::SslServerCredentials(options);
  } else {
    credentials = grpc::InsecureServerCredentials();
  }
  ext_proc_ = std::make_unique<ExtProcService>(*this, config.max_streams);
  health_ = std::make_unique<HealthService>(*this);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen, credentials, &port);
  builder.RegisterService(ext_proc_.get());
  builder.RegisterService(health_.get());
  const uint64_t limit = std::min<uint64_t>(max_message_bytes, INT32_MAX);
  builder.SetMaxReceiveMessageSize(static_cast<int>(limit));
  builder.SetMaxSendMessageSize(static_cast<int>(limit));
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) {
    server_.reset();
    return Status::Error("epp.listen: cannot listen on " + config.listen +
                         (config.cert_file.empty() ? "" : " (or the TLS certificate is invalid)"));
  }
  return port;
}

int EppServer::StatusFor(const std::string& service) const {
  const bool draining = draining_.load(std::memory_order_relaxed);
  const bool ready = ready_.load(std::memory_order_relaxed) && !draining;
  auto serving = [](bool yes) {
    return yes ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
  };
  if (service == "liveness") return HealthCheckResponse::SERVING;
  if (service.empty()) return serving(!draining);
  if (service == "readiness" || service == "inference-extension" ||
      service == "envoy.service.ext_proc.v3.ExternalProcessor") {
    return serving(ready);
  }
  return HealthCheckResponse::SERVICE_UNKNOWN;
}

void EppServer::SetReady(bool ready) {
  if (ready_.exchange(ready) != ready) NotifyWatches();
}

void EppServer::BeginDrain() {
  if (!draining_.exchange(true)) NotifyWatches();
}

void EppServer::AddWatch(HealthWatch* w) {
  std::lock_guard<std::mutex> lock(watches_mu_);
  watches_.push_back(w);
}

void EppServer::RemoveWatch(HealthWatch* w) {
  std::lock_guard<std::mutex> lock(watches_mu_);
  std::erase(watches_, w);
}

void EppServer::NotifyWatches() {
  std::lock_guard<std::mutex> lock(watches_mu_);
  for (HealthWatch* w : watches_) w->Notify();
}

void EppServer::Stop() {
  if (!server_) return;
  draining_.store(true);
  // Streams still open are cancelled; Shutdown returns when gRPC has called OnDone for each.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  // Each stream's last steps run on its worker, posted before OnDone returned; a stream whose
  // phase coroutine was cancelled ends one turn of the loop later. Two rounds of a barrier on
  // every worker let them all finish.
  for (int round = 0; round < 2; ++round) {
    for (Worker* w : workers_) {
      std::promise<void> done;
      boost::asio::post(w->io(), [&done] { done.set_value(); });
      done.get_future().wait();
    }
  }
  server_.reset();
}

}  // namespace tokenway
