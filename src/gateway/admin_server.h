// AdminServer: the admin listener (/ (status page), /healthz, /readyz, /metrics, /admin/endpoints,
// /admin/config, /admin/rollouts, POST /admin/rollouts/<model>/<action> and POST
// /admin/cache/purge), served on the control thread so scrapes never compete with the data
// plane's event loops.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/status.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/runtime.h"
#include "telemetry/metrics.h"

namespace tokenway {

struct GatewayShared;
class ScalingSignals;
class Discovery;
class KedaScaler;
class RolloutController;

// What the admin endpoints read. Everything here is safe to read from the control thread.
struct AdminView {
  GatewayShared* shared = nullptr;
  std::vector<WorkerMetrics*> metrics;
  MetricSlots* slots = nullptr;
  std::function<std::shared_ptr<const Runtime>()> runtime;
  const std::atomic<uint64_t>* reloads_ok = nullptr;
  const std::atomic<uint64_t>* reloads_failed = nullptr;
  const ScalingSignals* scaling = nullptr;  // null: no scaling signals
  const Discovery* discovery = nullptr;     // null: no Kubernetes discovery
  const KedaScaler* keda = nullptr;         // null: no KEDA external scaler
  // Progressive rollouts (/admin/rollouts and its actions); control thread, like the listener.
  RolloutController* rollouts = nullptr;  // null: no rollout controller
};

class AdminServer {
 public:
  AdminServer(boost::asio::io_context& ioc, AdminView view);
  boost::asio::ip::tcp::endpoint Listen(const boost::asio::ip::tcp::endpoint& at);
  void Start();
  void Stop();

  // Rendered documents (also used by tests).
  std::string RenderMetrics() const;
  std::string RenderEndpoints() const;
  std::string RenderRollouts() const;
  // POST /admin/rollouts/<model>/<action>: the HTTP status and the JSON body to answer.
  std::pair<int, std::string> RolloutAction(std::string_view path_after_prefix);
  bool Ready(std::string& reason) const;

 private:
  boost::asio::awaitable<void> AcceptLoop();
  boost::asio::awaitable<void> Serve(boost::asio::ip::tcp::socket socket);
  // POST /admin/cache/purge?tenant=&model=: removes the response cache's entries of a tenant
  // and/or a served model (both absent: all) from the in-process and the Redis store.
  void PurgeCache(std::string_view target, boost::beast::http::status& status,
                  std::string& body) const;

  boost::asio::io_context& ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  AdminView view_;
};

}  // namespace tokenway
