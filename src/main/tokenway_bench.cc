// tokenway-bench: load generator and experiment runner for OpenAI-compatible endpoints.
//   tokenway-bench run --url URL --workload sharegpt --rate 4 --duration 30s ...
//   tokenway-bench epp --epp 127.0.0.1:9002 --workload random --concurrency 20 --duration 10s
//   tokenway-bench experiment FILE.yaml
//   tokenway-bench simulate FILE.yaml          (the same experiment in virtual time)
//   tokenway-bench trace-gen --format mooncake --requests 1000 --rate 10 --out FILE
// docs/bench.md describes workloads, metrics and the experiment file.
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "bench/epp_load.h"
#include "bench/experiment.h"
#include "bench/load_generator.h"
#include "bench/report.h"
#include "bench/trace_file.h"
#include "bench/workload.h"
#include "common/duration.h"
#include "fleetsim/simulate.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) {
  g_stop.store(true);
}

double ToSeconds(const std::string& text, const char* flag) {
  auto d = tokenway::ParseDuration(text);
  if (!d.ok()) throw CLI::ValidationError(flag, d.status().message());
  return std::chrono::duration<double>(*d).count();
}

std::string SelfDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, n);
  return p.substr(0, p.rfind('/'));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tokenway::bench;
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);

  CLI::App app{"tokenway-bench: serving benchmark for OpenAI-compatible endpoints"};
  app.require_subcommand(1);

  // run and epp share the load options
  std::string url = "http://127.0.0.1:8080", path = "/v1/chat/completions";
  WorkloadOptions w;
  double rate = 0;
  std::vector<double> sweep;
  int64_t concurrency = 0, requests = 0;
  std::string duration = "", warmup = "0s", timeout = "300s", drain = "30s", slo_text;
  bool stream = true, constant = false;
  int threads = 1;
  std::string out_json, out_md;
  std::vector<std::string> metrics_urls;
  bool quiet = false;
  // epp: the same load, played as Envoy's ext_proc filter against an endpoint picker
  std::string epp_target = "127.0.0.1:9002", epp_authority = "tokenway-bench",
              body_mode_text = "full-duplex";
  std::vector<std::string> subset;
  bool subset_given = false, no_upstream = false;
  int64_t chunk_size = 16 * 1024;
  int fabricated_events = 100;
  int epp_pid = 0;
  auto add_load_options = [&](CLI::App* sub, bool http) {
    if (http) {
      sub->add_option("--url", url, "Base URL of the OpenAI-compatible server")
          ->capture_default_str();
    }
    sub->add_option("--path", path, "Request path")->capture_default_str();
    sub->add_option("--model", w.model, "Model name")->capture_default_str();
    sub->add_option("--workload", w.kind, "Workload")
        ->check(CLI::IsMember(WorkloadKinds()))
        ->capture_default_str();
    sub->add_option("--seed", w.seed, "Seed for prompts, lengths and arrivals")
        ->capture_default_str();
    auto* rate_opt = sub->add_option("--rate", rate, "Open loop: mean arrival rate (req/s)");
    auto* sweep_opt =
        sub->add_option("--rate-sweep", sweep, "Open loop at each rate in turn")->delimiter(',');
    auto* conc_opt =
        sub->add_option("--concurrency", concurrency, "Closed loop: requests in flight");
    rate_opt->excludes(sweep_opt)->excludes(conc_opt);
    sweep_opt->excludes(conc_opt);
    sub->add_flag("--constant", constant, "Constant gaps instead of Poisson arrivals");
    sub->add_option("--duration", duration, "Measured time per rate (e.g. 30s)");
    sub->add_option("--requests", requests, "Measured requests per rate");
    sub->add_option("--warmup", warmup, "Warm-up excluded from results")->capture_default_str();
    sub->add_option("--timeout", timeout, "Per-request timeout")->capture_default_str();
    sub->add_option("--drain", drain, "Time in-flight requests may take after the last start")
        ->capture_default_str();
    sub->add_flag("--stream,!--no-stream", stream, "Streaming requests (default) or not");
    sub->add_option("--slo", slo_text, "SLO for goodput, e.g. ttft=1s,tpot=50ms");
    sub->add_option("--threads", threads, "Event-loop threads")->capture_default_str();
    sub->add_option("--out", out_json, "Write results JSON here");
    sub->add_option("--report", out_md, "Write a Markdown report here");
    sub->add_option("--metrics-url", metrics_urls,
                    "An endpoint's /metrics for the prefix-cache hit rate (repeatable)");
    sub->add_flag("--quiet", quiet, "No progress line");
    // Workload parameters.
    sub->add_option("--input-len", w.random.input_len, "random: input tokens")
        ->capture_default_str();
    sub->add_option("--output-len", w.random.output_len, "random: output tokens")
        ->capture_default_str();
    sub->add_option("--range-ratio", w.random.range_ratio, "random: lengths in [ratio*L, L]")
        ->capture_default_str();
    auto& sp = w.shared_prefix;
    sub->add_option("--groups", sp.groups, "shared-prefix: groups")->capture_default_str();
    sub->add_option("--prompts-per-group", sp.prompts_per_group, "shared-prefix: prompts per group")
        ->capture_default_str();
    sub->add_option("--system-len", sp.system_len, "shared-prefix: system prompt tokens")
        ->capture_default_str();
    sub->add_option("--question-len", sp.question_len, "shared-prefix: question tokens")
        ->capture_default_str();
    sub->add_option("--gsp-output-len", sp.output_len, "shared-prefix: output tokens")
        ->capture_default_str();
    sub->add_option("--sessions", w.multi_turn.sessions, "multi-turn: sessions")
        ->capture_default_str();
    sub->add_option("--turns", w.multi_turn.turns, "multi-turn: turns per session")
        ->capture_default_str();
    sub->add_option("--adapters", w.lora.adapters, "lora-mix: adapters")->capture_default_str();
    sub->add_option("--zipf", w.lora.zipf_s, "lora-mix: Zipf exponent")->capture_default_str();
    sub->add_option("--lora-prefix", w.lora.prefix, "lora-mix: adapter name prefix")
        ->capture_default_str();
    sub->add_option("--min-input", w.long_context.min_input, "long-context: min input tokens")
        ->capture_default_str();
    sub->add_option("--max-input", w.long_context.max_input, "long-context: max input tokens")
        ->capture_default_str();
    sub->add_option("--trace-file", w.trace.path, "trace: Mooncake JSONL or Azure CSV file");
    sub->add_option("--trace-block-size", w.trace.block_size, "trace: tokens per hash id")
        ->capture_default_str();
    sub->add_option("--trace-time-scale", w.trace.time_scale, "trace: multiply arrival offsets")
        ->capture_default_str();
    sub->add_option("--trace-max-output", w.trace.max_output, "trace: cap output tokens (0: none)")
        ->capture_default_str();
  };
  auto* run = app.add_subcommand("run", "Send one workload to one URL and report");
  add_load_options(run, true);
  auto* epp = app.add_subcommand(
      "epp", "Play Envoy's ext_proc filter against an endpoint picker (gRPC) with one workload");
  add_load_options(epp, false);
  epp->add_option("--epp", epp_target, "The endpoint picker's gRPC address host:port")
      ->capture_default_str();
  epp->add_option("--authority", epp_authority, ":authority of the requests")
      ->capture_default_str();
  epp->add_option("--body-mode", body_mode_text,
                  "Request and response body mode: full-duplex (FULL_DUPLEX_STREAMED) or buffered")
      ->check(CLI::IsMember({"full-duplex", "buffered"}))
      ->capture_default_str();
  epp->add_option("--chunk-size", chunk_size, "Request body bytes per request_body message")
      ->capture_default_str();
  epp->add_option("--subset", subset, "Subset hint: endpoints ip:port the picker must pick from")
      ->delimiter(',');
  epp->add_flag(
      "--no-upstream", no_upstream,
      "Fabricate the response (an SSE stream; with --no-stream a JSON completion) instead of "
      "forwarding to the endpoint");
  epp->add_option(
         "--events", fabricated_events,
         "--no-upstream: tokens per response (streams: one event, one response_body message each)")
      ->capture_default_str();
  epp->add_option("--epp-pid", epp_pid, "The picker's pid: report its CPU time per request");
  // experiment
  auto* exp = app.add_subcommand("experiment", "Run an experiment file (fleet + gateways)");
  ExperimentOptions eo;
  exp->add_option("file", eo.file, "Experiment YAML")->required()->check(CLI::ExistingFile);
  exp->add_option("--out", eo.out_dir, "Output directory (overrides the file's `out`)");
  exp->add_option("--bin-dir", eo.bin_dir, "Directory of tokenway and tokenway-sim");
  exp->add_flag("--quiet", quiet, "No progress line");

  // simulate
  auto* simulate =
      app.add_subcommand("simulate", "Run an experiment file in virtual time (no processes)");
  tokenway::fleetsim::SimulateOptions so;
  simulate->add_option("file", so.file, "Experiment YAML")->required()->check(CLI::ExistingFile);
  simulate->add_option("--out", so.out_dir, "Output directory (overrides the file's `out`)");
  simulate->add_flag("--progress", so.progress, "Print each point's simulation cost");

  // trace-gen
  auto* tracegen = app.add_subcommand("trace-gen", "Write a synthetic trace (Mooncake or Azure)");
  SyntheticTraceOptions tg;
  std::string tg_format = "mooncake", tg_out;
  tracegen->add_option("--format", tg_format, "mooncake (JSONL, hash ids) or azure (CSV)")
      ->check(CLI::IsMember({"mooncake", "azure"}))
      ->capture_default_str();
  tracegen->add_option("--out", tg_out, "Trace file to write")->required();
  tracegen->add_option("--requests", tg.requests, "Records")->capture_default_str();
  tracegen->add_option("--rate", tg.rate, "Mean arrival rate (req/s, Poisson)")
      ->capture_default_str();
  tracegen->add_option("--seed", tg.seed, "Seed")->capture_default_str();
  tracegen->add_option("--input-median", tg.input_median, "Median input tokens (log-normal)")
      ->capture_default_str();
  tracegen->add_option("--output-median", tg.output_median, "Median output tokens (log-normal)")
      ->capture_default_str();
  tracegen->add_option("--max-input", tg.max_input, "Input cap")->capture_default_str();
  tracegen->add_option("--max-output", tg.max_output, "Output cap")->capture_default_str();
  tracegen->add_option("--groups", tg.groups, "mooncake: prefix groups (Zipf popularity)")
      ->capture_default_str();
  tracegen->add_option("--zipf", tg.zipf, "mooncake: Zipf exponent of group popularity")
      ->capture_default_str();
  tracegen->add_option("--shared-blocks", tg.shared_blocks, "mooncake: hash ids a group shares")
      ->capture_default_str();
  tracegen->add_option("--block-size", tg.block_size, "mooncake: tokens per hash id")
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);

  if (*simulate) {
    so.command_line = command_line;
    return tokenway::fleetsim::RunSimulation(so, &g_stop);
  }
  if (*tracegen) {
    auto format = ParseTraceFormat(tg_format);
    tg.format = *format;
    tokenway::Status st = WriteSyntheticTrace(tg, tg_out);
    if (!st.ok()) {
      fprintf(stderr, "tokenway-bench: %s\n", st.message().c_str());
      return 2;
    }
    return 0;
  }
  if (*exp) {
    if (eo.bin_dir.empty()) eo.bin_dir = SelfDir();
    eo.progress = !quiet;
    eo.command_line = command_line;
    return RunExperiment(eo, &g_stop);
  }

  subset_given = epp->count("--subset") > 0;
  LoadOptions o;
  try {
    auto target = ParseHttpUrl(*epp ? "http://127.0.0.1" : url, path);
    if (!target.ok()) throw CLI::ValidationError("--url", target.status().message());
    o.target = *target;
    o.stream = stream;
    o.poisson = !constant;
    o.concurrency = concurrency;
    o.requests = requests;
    o.duration_s = duration.empty() ? 0 : ToSeconds(duration, "--duration");
    o.warmup_s = ToSeconds(warmup, "--warmup");
    o.timeout_s = ToSeconds(timeout, "--timeout");
    o.drain_s = ToSeconds(drain, "--drain");
    o.threads = threads;
    o.seed = w.seed;
    o.progress = !quiet;
    o.trace_arrivals = w.kind == "trace";
    if (*epp && w.kind == "trace") {
      throw CLI::ValidationError("--workload",
                                 "epp runs take --rate or --concurrency, not a trace");
    }
    if (w.kind == "trace" && w.trace.path.empty()) {
      throw CLI::ValidationError("--trace-file", "the trace workload needs --trace-file");
    }
    if (!o.trace_arrivals && rate <= 0 && sweep.empty() && concurrency <= 0) {
      throw CLI::ValidationError("--rate", "give --rate, --rate-sweep or --concurrency");
    }
    if (o.duration_s <= 0 && requests <= 0 && !o.trace_arrivals) {
      throw CLI::ValidationError("--duration", "give --duration or --requests");
    }
  } catch (const CLI::Error& e) {
    return app.exit(e);
  }
  tokenway::bench::Slo slo;
  if (!slo_text.empty()) {
    auto parsed = ParseSlo(slo_text);
    if (!parsed.ok()) {
      fprintf(stderr, "tokenway-bench: --slo: %s\n", parsed.status().message().c_str());
      return 2;
    }
    slo = *parsed;
  }
  std::vector<double> rates = sweep;
  if (rates.empty()) rates.push_back(rate);
  LoadOptions sizing = o;
  sizing.rate = *std::max_element(rates.begin(), rates.end());
  // Each rate of a sweep gets its own prompts (a server's prefix cache must not carry one rate's
  // prompts into the next); finite workloads (shared-prefix, multi-turn, trace) are the same set.
  const int64_t per_rate = WorkloadCountFor(sizing, w.kind);
  const int64_t slices = per_rate > 0 ? static_cast<int64_t>(rates.size()) : 1;
  auto workload = GenerateWorkload(w, per_rate * slices);
  if (!workload.ok()) {
    fprintf(stderr, "tokenway-bench: %s\n", workload.status().message().c_str());
    return 2;
  }
  std::vector<RunSummary> runs;
  if (*epp) {
    EppLoadOptions eo;
    eo.epp = epp_target;
    eo.authority = epp_authority;
    eo.epp_pid = epp_pid;
    BodyMode mode =
        body_mode_text == "buffered" ? BodyMode::kBuffered : BodyMode::kFullDuplexStreamed;
    eo.envoy.request_body_mode = mode;
    eo.envoy.response_body_mode = mode;
    eo.envoy.chunk_size = static_cast<size_t>(std::max<int64_t>(1, chunk_size));
    if (subset_given) eo.envoy.subset_hint = subset;
    eo.envoy.no_upstream = no_upstream;
    eo.envoy.fabricated_stream = o.stream;
    eo.envoy.fabricated_events = fabricated_events;
    eo.envoy.timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1e3));
    std::string epp_json = "[";
    for (size_t i = 0; i < rates.size(); ++i) {
      if (g_stop.load()) break;
      std::vector<WorkloadRequest> slice;
      if (slices > 1) {
        slice.assign(workload->begin() + static_cast<int64_t>(i) * per_rate,
                     workload->begin() + static_cast<int64_t>(i + 1) * per_rate);
      }
      eo.load = o;
      eo.load.rate = rates[i];
      eo.load.progress_label = rates[i] > 0 ? std::to_string(rates[i]).substr(0, 6) + " req/s" : "";
      EppLoadResult r = RunEppLoad(eo, slices > 1 ? slice : *workload, &g_stop);
      runs.push_back(Summarize(r.load, eo.load, slo, "epp", w.kind));
      printf("%s", FormatEppSummary(r, runs.back()).c_str());
      if (i > 0) epp_json += ',';
      epp_json += EppSummaryJson(r, runs.back());
    }
    epp_json += ']';
    printf("%s", FormatTable(runs).c_str());
    std::string meta = RunMetadataJson(command_line);
    if (!out_json.empty()) {
      std::string j = ToJson(runs, meta);
      while (!j.empty() && (j.back() == '\n' || j.back() == ' ')) j.pop_back();
      if (!j.empty() && j.back() == '}') j.pop_back();
      std::ofstream f(out_json);
      f << j << ",\"epp\":" << epp_json << "}";
    }
    if (!out_md.empty()) {
      std::ofstream f(out_md);
      f << ToMarkdown(runs, "tokenway-bench epp",
                      "- command: `" + command_line + "`\n- picker: " + epp_target +
                          "\n- workload: `" + w.kind + "`\n- metadata: `" + meta + "`\n");
    }
    int64_t ok = 0;
    for (const auto& r : runs) ok += r.succeeded;
    return g_stop.load() ? 130 : (ok > 0 ? 0 : 1);
  }
  for (size_t i = 0; i < rates.size(); ++i) {
    if (g_stop.load()) break;
    const double r = rates[i];
    std::vector<WorkloadRequest> slice;
    if (slices > 1) {
      slice.assign(workload->begin() + static_cast<int64_t>(i) * per_rate,
                   workload->begin() + static_cast<int64_t>(i + 1) * per_rate);
    }
    const std::vector<WorkloadRequest>& requests = slices > 1 ? slice : *workload;
    LoadOptions point = o;
    point.rate = o.trace_arrivals ? 0 : r;
    point.progress_label = r > 0 ? std::to_string(r).substr(0, 6) + " req/s" : "";
    runs.push_back(RunPoint(point, requests, metrics_urls, slo, "run", w.kind, &g_stop));
    if (rates.size() > 1) fprintf(stderr, "%s", FormatTable({runs.back()}).c_str());
  }
  printf("%s", FormatTable(runs).c_str());
  std::string meta = RunMetadataJson(command_line);
  if (!out_json.empty()) {
    std::ofstream f(out_json);
    f << ToJson(runs, meta);
  }
  if (!out_md.empty()) {
    std::ofstream f(out_md);
    f << ToMarkdown(runs, "tokenway-bench run",
                    "- command: `" + command_line + "`\n- target: " + url + path +
                        "\n- workload: `" + w.kind + "`, " + std::to_string(workload->size()) +
                        " distinct requests\n- metadata: `" + meta + "`\n");
  }
  int64_t ok = 0;
  for (const auto& r : runs) ok += r.succeeded;
  return g_stop.load() ? 130 : (ok > 0 ? 0 : 1);
}
