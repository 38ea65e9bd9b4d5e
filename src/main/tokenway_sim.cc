// tokenway-sim: a vLLM-compatible model-server simulator fleet in one process (docs/simulator.md).
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <functional>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "sim/metrics_text.h"
#include "sim/server.h"
#include "sim/validation.h"

int main(int argc, char** argv) {
  namespace sim = tokenway::sim;
  CLI::App app{
      "tokenway-sim: vLLM-compatible model-server simulator (engine model, KV cache, LoRA)"};
  std::string host = "127.0.0.1";
  int port = 8000;
  int count = 1;
  std::string model = "meta-llama/Llama-3.1-8B-Instruct";
  double speed = 1.0;
  uint64_t seed = 0;
  std::string profile = "h100-8b";
  std::vector<std::string> profiles;
  std::string dialect = "vllm";
  int max_loras = 4;
  std::vector<std::string> loras;
  int max_num_seqs = 0;
  int max_num_batched_tokens = 0;
  int64_t kv_blocks = 0;
  int64_t max_waiting = 4096;
  double output_len_mean = 179;
  double drain_seconds = 5;
  std::vector<std::string> fault_settings;
  bool validate = false;
  bool validate_json = false;
  sim::FaultConfig faults;

  app.add_option("--host", host, "Listen address")->capture_default_str();
  app.add_option("--port", port, "First port; endpoints use port..port+count-1; 0 = free ports")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--count", count, "Number of endpoints (independent engines)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--model", model, "Served base model name")->capture_default_str();
  app.add_option("--speed", speed, "Engine clock runs this many times faster than real time")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "Seed for sampled lengths, words and faults")
      ->capture_default_str();
  const std::string profile_help = [] {
    std::string names;
    for (const auto& name : sim::ProfileNames()) names += (names.empty() ? "" : ", ") + name;
    return "Hardware profile: " + names;
  }();
  app.add_option("--profile", profile, profile_help)->capture_default_str();
  app.add_option("--profiles", profiles, "Per-endpoint profiles (comma-separated), cycled")
      ->delimiter(',');
  app.add_option("--dialect", dialect,
                 "Metric names: vllm, sglang, trtllm-serve or triton-tensorrt-llm")
      ->capture_default_str()
      ->check(CLI::IsMember(std::vector<std::string>(std::begin(sim::kMetricsDialectNames),
                                                     std::end(sim::kMetricsDialectNames))));
  app.add_option("--max-loras", max_loras, "LoRA adapter slots per engine")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--lora", loras, "Pre-registered LoRA adapter NAME or NAME=PATH (repeatable)");
  app.add_option("--max-num-seqs", max_num_seqs, "Override the profile's max_num_seqs")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--max-num-batched-tokens", max_num_batched_tokens,
                 "Override the profile's max_num_batched_tokens")
      ->check(CLI::Range(1, 1 << 24));
  app.add_option("--kv-blocks", kv_blocks, "Override the KV pool size in blocks of 16 tokens")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 26));
  app.add_option("--max-waiting", max_waiting, "Waiting requests per endpoint before 503")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app.add_option("--output-len-mean", output_len_mean,
                 "Mean sampled output length when max_tokens is absent")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--drain-timeout", drain_seconds,
                 "Seconds SIGTERM waits for requests in flight to finish (no new connections "
                 "meanwhile); a second signal or 0 stops at once")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option(
      "--fault", fault_settings,
      "Fault setting KEY=VALUE as in POST /sim/faults (repeatable), e.g. error_rate=0.1");
  app.add_option("--fault-error-rate", faults.error_rate, "Share of requests answered 500")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--fault-rate-limit-rate", faults.rate_limit_rate,
                 "Share of requests answered 429")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--fault-stall-after-tokens", faults.stall_after_tokens,
                 "Stop sending after K tokens, keep the connection open (-1 off)");
  app.add_option("--fault-drop-after-tokens", faults.drop_after_tokens,
                 "Reset the connection after K tokens (-1 off)");
  app.add_option("--fault-slow-start-ms", faults.slow_start_ms,
                 "Wall-clock delay before a request enters the engine");
  app.add_flag("--fault-health-fail", faults.health_fail, "GET /health answers 503");
  app.add_option("--fault-garbage-rate", faults.garbage_rate,
                 "Share of requests answered with invalid HTTP/JSON")
      ->check(CLI::Range(0.0, 1.0));
  app.add_flag("--validate", validate,
               "Print the engine model's validation tables for --profile (fake clock) and exit");
  app.add_flag("--validate-json", validate_json, "Like --validate, decode points as JSON");
  CLI11_PARSE(app, argc, argv);

  if (validate || validate_json) {
    auto hardware = sim::FindProfile(profile);
    if (!hardware) {
      std::cerr << "tokenway-sim: unknown profile '" << profile << "'; " << profile_help << "\n";
      return 2;
    }
    return sim::RunValidation(*hardware, validate_json, std::cout) ? 0 : 1;
  }

  for (const std::string& setting : fault_settings) {
    const auto eq = setting.find('=');
    if (eq == std::string::npos) {
      std::cerr << "tokenway-sim: --fault expects KEY=VALUE, got '" << setting << "'\n";
      return 2;
    }
    const std::string json = "{\"" + setting.substr(0, eq) + "\":" + setting.substr(eq + 1) + "}";
    if (std::string error = faults.ApplyJson(json); !error.empty()) {
      std::cerr << "tokenway-sim: --fault " << setting << ": " << error << "\n";
      return 2;
    }
  }
  if (profiles.empty()) profiles.push_back(profile);

  sim::ServerOptions options;
  options.host = host;
  options.first_port = static_cast<uint16_t>(port);
  options.speed = speed;
  for (int i = 0; i < count; ++i) {
    const std::string& name = profiles[i % profiles.size()];
    auto hardware = sim::FindProfile(name);
    if (!hardware) {
      std::cerr << "tokenway-sim: unknown profile '" << name << "'; " << profile_help << "\n";
      return 2;
    }
    if (max_num_seqs > 0) hardware->max_num_seqs = max_num_seqs;
    if (max_num_batched_tokens > 0) hardware->max_num_batched_tokens = max_num_batched_tokens;
    sim::EndpointOptions endpoint;
    endpoint.engine.profile = *hardware;
    endpoint.engine.model_name = model;
    endpoint.engine.max_loras = max_loras;
    endpoint.engine.kv_blocks = kv_blocks;
    endpoint.engine.seed = seed;
    endpoint.faults = faults;
    sim::ParseMetricsDialect(dialect, endpoint.dialect);  // checked by --dialect's validator
    endpoint.output_len_mean = output_len_mean;
    endpoint.max_waiting = max_waiting;
    for (const std::string& lora : loras) {
      const auto eq = lora.find('=');
      endpoint.loras.push_back(eq == std::string::npos
                                   ? sim::AdapterEntry{lora, "/adapters/" + lora}
                                   : sim::AdapterEntry{lora.substr(0, eq), lora.substr(eq + 1)});
    }
    options.endpoints.push_back(std::move(endpoint));
  }

  boost::asio::io_context io(1);
  sim::SimServer server(io, options);
  std::vector<uint16_t> ports;
  try {
    ports = server.Listen();
  } catch (const std::exception& error) {
    std::cerr << "tokenway-sim: cannot listen on " << host << ": " << error.what() << "\n";
    return 1;
  }
  server.Start();
  // SIGTERM drains like a model server in a rolling restart: listeners close, requests in
  // flight finish (up to --drain-timeout), then the process exits; a second signal stops at once.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  boost::asio::steady_timer drain_poll(io);
  const auto drain_deadline_from = [&] {
    return std::chrono::steady_clock::now() +
           std::chrono::milliseconds(static_cast<int64_t>(drain_seconds * 1000));
  };
  std::chrono::steady_clock::time_point drain_deadline;
  std::function<void()> poll_drain = [&] {
    if (server.active_requests() == 0 || std::chrono::steady_clock::now() >= drain_deadline) {
      io.stop();
      return;
    }
    drain_poll.expires_after(std::chrono::milliseconds(10));
    drain_poll.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) poll_drain();
    });
  };
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    server.Drain();
    drain_deadline = drain_deadline_from();
    signals.async_wait([&](const boost::system::error_code& again, int) {
      if (!again) io.stop();
    });
    poll_drain();
  });

  std::ostringstream ready;
  ready << "{\"ready\":true,\"endpoints\":[";
  for (std::size_t i = 0; i < ports.size(); ++i) {
    ready << (i ? "," : "") << "{\"port\":" << ports[i] << ",\"url\":\"http://" << host << ":"
          << ports[i] << "\"}";
  }
  ready << "]}\n";
  std::fputs(ready.str().c_str(), stdout);
  std::fflush(stdout);
  std::cerr << "tokenway-sim: " << count << " endpoint(s), model " << model << ", speed " << speed
            << "x, dialect " << dialect << "\n";

  io.run();
  std::cerr << "tokenway-sim: stopping\n";
  std::fflush(stderr);
  // In-flight connection coroutines are owned by the io_context; skip their teardown.
  _exit(0);
}
