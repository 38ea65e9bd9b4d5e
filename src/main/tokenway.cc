// main() of the tokenway gateway: flags, configuration, then RunGateway.
#include <CLI/CLI.hpp>
#include <iostream>

#include <yaml-cpp/yaml.h>

#include "control/config.h"
#include "control/runtime.h"
#include "gateway/gateway.h"
#include "telemetry/metrics.h"

int main(int argc, char** argv) {
  using namespace tokenway;
  CLI::App app{
      "tokenway: an OpenAI-compatible inference gateway for fleets of model servers.\n"
      "Configure with a YAML file (--config; see docs/configuration.md) or quick flags\n"
      "(--upstream and --model). Flags given with --config override the file.\n"
      "Signals: SIGHUP reloads the config file (so does a change of the file);\n"
      "SIGTERM/SIGINT drain in-flight requests, then exit 0."};
  std::string config_path, validate_path, listen, admin, policy = "least-request";
  std::vector<std::string> upstreams, models;
  int workers = -1;
  bool no_access_log = false;
  app.add_option("--config", config_path, "YAML configuration file")->check(CLI::ExistingFile);
  app.add_option("--validate", validate_path,
                 "Check a configuration file (syntax, fields, endpoint addresses) and exit");
  app.add_option("--upstream", upstreams,
                 "Model-server endpoint http://host:port (repeatable); forms pool 'default'");
  app.add_option("--model", models, "Model name served by the --upstream pool (repeatable)");
  app.add_option("--listen", listen, "OpenAI API listener host:port (default 127.0.0.1:8080)");
  app.add_option("--admin", admin, "Admin listener host:port (default 127.0.0.1:8081)");
  std::string epp_listen;
  app.add_option("--epp-listen", epp_listen,
                 "Endpoint-picker listener host:port (Envoy ext_proc gRPC, as epp.listen)");
  app.add_option("--workers", workers, "Worker threads (default: one per core)")
      ->check(CLI::Range(0, 256));
  app.add_option("--policy", policy, "Picker for the --upstream pool")
      ->check(CLI::IsMember(KnownPolicies()));
  app.add_flag("--no-access-log", no_access_log, "Disable the JSON access log on stdout");
  std::string governance_path;
  app.add_option("--governance", governance_path,
                 "With --upstream: YAML file with a `governance:` section (tenants, limits)")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);

  if (!validate_path.empty()) {
    auto config = LoadConfigFile(validate_path);
    if (!config.ok()) {
      std::cerr << config.status().message() << "\n";
      return 1;
    }
    EndpointRegistry endpoints;
    MetricSlots slots;
    auto rt = BuildRuntime(*config, endpoints, slots, 1, 0);
    if (!rt.ok()) {
      std::cerr << validate_path << ": " << rt.status().message() << "\n";
      return 1;
    }
    std::cout << validate_path << ": ok (" << config->pools.size() << " pools, "
              << config->models.size() << " models)\n";
    return 0;
  }

  GatewayOptions options;
  if (!config_path.empty()) {
    if (!upstreams.empty() || !models.empty() || !governance_path.empty()) {
      std::cerr << "use either --config or --upstream/--model/--governance, not both\n";
      return 2;
    }
    auto config = LoadConfigFile(config_path);
    if (!config.ok()) {
      std::cerr << config.status().message() << "\n";
      return 1;
    }
    options.config = *config;
    options.config_path = config_path;
  } else {
    if (upstreams.empty() || models.empty()) {
      std::cerr << "tokenway needs --config FILE, or --upstream URL and --model NAME "
                   "(see --help)\n";
      return 2;
    }
    PoolConfig pool;
    pool.name = "default";
    pool.policy = policy;
    for (const auto& url : upstreams) {
      auto ep = ParseEndpointUrl(url);
      if (!ep.ok()) {
        std::cerr << "--upstream: " << ep.status().message() << "\n";
        return 2;
      }
      pool.endpoints.push_back(*ep);
    }
    options.config.pools.push_back(pool);
    for (const auto& m : models) options.config.models.push_back({m, "default", ""});
    if (!governance_path.empty()) {
      StatusOr<GovernanceConfig> governance = Status::Error(governance_path + ": no governance");
      try {
        YAML::Node root = YAML::LoadFile(governance_path);
        if (root["governance"])
          governance = LoadGovernanceConfig(root["governance"], governance_path);
      } catch (const YAML::Exception& e) {
        governance = Status::Error(governance_path + ": " + e.what());
      }
      if (!governance.ok()) {
        std::cerr << governance.status().message() << "\n";
        return 2;
      }
      options.config.governance = *governance;
    }
    auto status = ValidateConfig(options.config);
    if (!status.ok()) {
      std::cerr << status.message() << "\n";
      return 2;
    }
  }
  options.disable_access_log = no_access_log;
  options.listen_override = listen;
  options.admin_override = admin;
  if (!epp_listen.empty() && epp_listen.rfind(':') == std::string::npos) {
    std::cerr << "--epp-listen: '" << epp_listen << "' must be host:port\n";
    return 2;
  }
  options.epp_listen_override = epp_listen;
  options.workers_override = workers;
  return RunGateway(std::move(options));
}
