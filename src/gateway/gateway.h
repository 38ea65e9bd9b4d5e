// Gateway: the tokenway process. Owns the workers, the control thread's io_context (admin
// listener, health checks, config reloads, signals) and the Runtime snapshots it publishes.
//
// Life cycle: Run() binds every listener, starts the workers and serves until SIGTERM/SIGINT,
// then drains: stop accepting, let in-flight requests finish up to drain_timeout, exit 0.
// SIGHUP or a change of the config file reloads; a bad file is rejected whole.
#pragma once

#include <string>

#include "control/config.h"

namespace tokenway {

struct GatewayOptions {
  GatewayConfig config;
  std::string config_path;  // empty when configured by flags only
  // Flags that override the file on every (re)load.
  std::string listen_override;
  std::string admin_override;
  std::string epp_listen_override;  // enables the endpoint-picker front door (epp.listen)
  int workers_override = -1;
  bool disable_access_log = false;
};

// Runs the gateway; returns the process exit code.
int RunGateway(GatewayOptions options);

}  // namespace tokenway
