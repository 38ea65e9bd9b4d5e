#include "fleetsim/simulate.h"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bench/report.h"
#include "bench/trace_file.h"
#include "common/json_writer.h"
#include "sim/profiles.h"

namespace tokenway::fleetsim {
namespace {

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

StatusOr<int64_t> FlagInt(const std::vector<std::string>& args, size_t& i) {
  if (i + 1 >= args.size()) return Status::Error("fleet.args: " + args[i] + " needs a value");
  const std::string& v = args[++i];
  try {
    size_t used = 0;
    int64_t n = std::stoll(v, &used);
    if (used != v.size() || n < 0) throw std::invalid_argument(v);
    return n;
  } catch (const std::exception&) {
    return Status::Error("fleet.args: " + args[i - 1] + " needs a non-negative integer, got '" + v +
                         "'");
  }
}

// Marks pools that ask for the oracle and gives them a plain policy for the gateway build.
StatusOr<std::string> StripOracle(const std::string& yaml, std::vector<std::string>& oracle_pools) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const std::exception& ex) {
    return Status::Error(std::string("gateway configuration: ") + ex.what());
  }
  bool changed = false;
  if (root["pools"] && root["pools"].IsSequence()) {
    for (YAML::Node pool : root["pools"]) {
      if (!pool.IsMap()) continue;
      bool oracle = pool["policy"] && pool["policy"].IsScalar() &&
                    pool["policy"].as<std::string>() == "oracle";
      if (pool["scheduler"] && pool["scheduler"].IsMap() && pool["scheduler"]["preset"] &&
          pool["scheduler"]["preset"].IsScalar() &&
          pool["scheduler"]["preset"].as<std::string>() == "oracle") {
        oracle = true;
        pool.remove("scheduler");
      }
      if (!oracle) continue;
      pool["policy"] = "round-robin";
      oracle_pools.push_back(pool["name"] ? pool["name"].as<std::string>() : std::string());
      changed = true;
    }
  }
  if (!changed) return yaml;
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str());
}

}  // namespace

StatusOr<FleetSpec> FleetFor(const bench::Experiment& e) {
  FleetSpec f;
  f.endpoints = e.fleet_count;
  f.model = e.workload.model;
  f.loras = e.loras;
  f.speed = e.fleet_speed;
  f.seed = e.workload.seed;  // what `experiment` passes to tokenway-sim --seed
  std::vector<std::string> profile_names = {e.fleet_profile};
  int64_t max_num_seqs = 0, max_batched = 0;
  const auto& a = e.fleet_args;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string& flag = a[i];
    auto number = [&](int64_t& dst) -> Status {
      auto n = FlagInt(a, i);
      if (!n.ok()) return n.status();
      dst = *n;
      return Status::Ok();
    };
    Status st = Status::Ok();
    int64_t n = 0;
    if (flag == "--max-num-seqs") {
      st = number(max_num_seqs);
    } else if (flag == "--max-num-batched-tokens") {
      st = number(max_batched);
    } else if (flag == "--kv-blocks") {
      st = number(f.kv_blocks);
    } else if (flag == "--max-waiting") {
      st = number(f.max_waiting);
    } else if (flag == "--max-loras") {
      st = number(n);
      f.max_loras = static_cast<int>(n);
    } else if (flag == "--seed") {
      st = number(n);
      f.seed = static_cast<uint64_t>(n);
    } else if ((flag == "--profile" || flag == "--profiles" || flag == "--lora" ||
                flag == "--dialect" || flag == "--output-len-mean") &&
               i + 1 < a.size()) {
      const std::string& v = a[++i];
      if (flag == "--profile") profile_names = {v};
      if (flag == "--profiles") {
        profile_names.clear();
        std::stringstream ss(v);
        for (std::string p; std::getline(ss, p, ',');) profile_names.push_back(p);
      }
      if (flag == "--lora") f.loras.push_back(v.substr(0, v.find('=')));
    } else {
      st = Status::Error("fleet.args: '" + flag +
                         "' is not simulated (known: --max-num-seqs, --max-num-batched-tokens, "
                         "--kv-blocks, --max-loras, --max-waiting, --profile, --profiles, "
                         "--lora, --seed, --dialect, --output-len-mean)");
    }
    if (!st.ok()) return st;
  }
  for (const auto& name : profile_names) {
    auto p = sim::FindProfile(name);
    if (!p) return Status::Error("fleet: unknown profile '" + name + "'");
    if (max_num_seqs > 0) p->max_num_seqs = static_cast<int>(max_num_seqs);
    if (max_batched > 0) p->max_num_batched_tokens = static_cast<int>(max_batched);
    f.profiles.push_back(*p);
  }
  if (f.endpoints < 1) return Status::Error("fleet.count must be at least 1");
  if (!(f.speed > 0)) return Status::Error("fleet.speed must be positive");
  return f;
}

StatusOr<GatewaySpec> GatewayFor(const bench::Experiment& e, const bench::Configuration& c) {
  std::vector<std::string> urls;
  urls.reserve(static_cast<size_t>(e.fleet_count));
  for (int64_t i = 0; i < e.fleet_count; ++i) urls.push_back(FleetUrl(i));
  GatewaySpec g;
  std::string yaml;
  if (c.config.empty() && c.policy == "oracle") {
    bench::Configuration plain = c;
    plain.policy = "round-robin";
    yaml = bench::GatewayYaml(e, plain, urls);
    g.oracle_pools.push_back("fleet");
  } else {
    auto stripped = StripOracle(bench::GatewayYaml(e, c, urls), g.oracle_pools);
    if (!stripped.ok()) return stripped.status();
    yaml = *stripped;
  }
  auto config = ParseConfig(yaml, "configuration '" + c.name + "'");
  if (!config.ok()) return config.status();
  g.config = std::move(*config);
  for (const auto& pool : g.config.pools) {
    if (pool.endpoints.empty()) {
      return Status::Error("configuration '" + c.name + "': pool '" + pool.name +
                           "' lists no endpoints (discovery is not simulated)");
    }
  }
  const bench::SimulationSettings& s = e.simulation;
  if (s.engine_metrics_interval_s > 0) {
    g.config.engine_metrics.interval = std::chrono::duration_cast<Duration>(
        std::chrono::duration<double>(s.engine_metrics_interval_s));
  }
  g.replicas = s.gateway_replicas;
  g.network_delay_s = s.network_delay_s;
  g.gateway_overhead_s = s.gateway_overhead_s;
  return g;
}

bench::LoadOptions LoadFor(const bench::Experiment& e, double rate) {
  bench::LoadOptions o;
  o.stream = e.stream;
  o.duration_s = e.duration_s;
  o.warmup_s = e.warmup_s;
  o.timeout_s = e.timeout_s;
  o.drain_s = e.drain_s;
  o.seed = e.workload.seed;
  o.concurrency = e.concurrency;
  o.trace_arrivals = e.workload.kind == "trace";
  o.rate = o.trace_arrivals ? 0 : rate;
  if (e.simulation.requests > 0) {
    o.requests = e.simulation.requests;
    o.duration_s = 0;
  }
  return o;
}

StatusOr<WorkloadSource> WorkloadFor(const bench::Experiment& e, const bench::LoadOptions& base,
                                     int64_t* malformed, std::vector<std::string>* errors) {
  WorkloadSource w;
  w.model = e.workload.model;
  w.seed = e.workload.seed;
  if (e.workload.kind == "trace") {
    w.trace_params = e.workload.trace;
    auto reader = bench::TraceReader::Open(e.workload.trace.path, /*skip_malformed=*/true);
    if (!reader.ok()) return reader.status();
    bench::TraceRecord rec;
    while (reader->Next(rec)) w.trace.push_back(std::move(rec));
    if (!reader->status().ok()) return reader->status();
    if (malformed) *malformed = reader->malformed();
    if (errors) *errors = reader->errors();
    if (w.trace.empty()) {
      return Status::Error("trace file '" + e.workload.trace.path + "' has no valid records");
    }
    return w;
  }
  auto items = bench::GenerateWorkload(e.workload, bench::WorkloadCountFor(base, e.workload.kind));
  if (!items.ok()) return items.status();
  w.items = std::move(*items);
  return w;
}

StatusOr<bench::RunSummary> SimulatePoint(const bench::Experiment& e, const bench::Configuration& c,
                                          double rate, const FleetSpec& fleet,
                                          const WorkloadSource& workload,
                                          const std::atomic<bool>* stop, FleetResult* raw) {
  auto gateway = GatewayFor(e, c);
  if (!gateway.ok()) return gateway.status();
  LoadSpec load;
  load.options = LoadFor(e, rate);
  load.slo = e.slo;
  load.itl_samples = e.simulation.itl_samples;
  load.seed = e.simulation.seed;
  load.stop = stop;
  auto result = RunFleet(fleet, *gateway, load, workload);
  if (!result.ok()) return result.status();
  bench::RunSummary s =
      bench::Summarize(result->load, load.options, e.slo, c.name, e.workload.kind);
  s.prefix_queries = result->prefix_queries;
  s.prefix_hits = result->prefix_hits;
  if (s.prefix_queries > 0) s.prefix_hit_rate = s.prefix_hits / s.prefix_queries;
  s.adapter_loads = result->adapter_loads;
  if (result->ttft_predictions > 0) {
    s.ttft_prediction_mape = result->ttft_error_sum / static_cast<double>(result->ttft_predictions);
  }
  if (result->tpot_predictions > 0) {
    s.tpot_prediction_mape = result->tpot_error_sum / static_cast<double>(result->tpot_predictions);
  }
  s.slo_refused = static_cast<int64_t>(result->slo_refused);
  if (raw) *raw = std::move(*result);
  return s;
}

int RunSimulation(const SimulateOptions& opts, const std::atomic<bool>* stop) {
  auto loaded = bench::LoadExperiment(opts.file);
  if (!loaded.ok()) {
    std::fprintf(stderr, "tokenway-bench: %s\n", loaded.status().message().c_str());
    return 2;
  }
  const bench::Experiment& e = *loaded;
  const std::string out_dir = opts.out_dir.empty() ? e.out_dir : opts.out_dir;
  std::error_code fec;
  std::filesystem::create_directories(out_dir, fec);
  if (fec) {
    std::fprintf(stderr, "tokenway-bench: cannot create %s: %s\n", out_dir.c_str(),
                 fec.message().c_str());
    return 2;
  }
  auto fleet = FleetFor(e);
  if (!fleet.ok()) {
    std::fprintf(stderr, "tokenway-bench: %s: %s\n", opts.file.c_str(),
                 fleet.status().message().c_str());
    return 2;
  }
  // Check every configuration before running any.
  for (const auto& c : e.configurations) {
    auto g = GatewayFor(e, c);
    if (!g.ok()) {
      std::fprintf(stderr, "tokenway-bench: %s: %s\n", opts.file.c_str(),
                   g.status().message().c_str());
      return 2;
    }
  }
  const std::vector<double> points = e.rates.empty() ? std::vector<double>{0} : e.rates;
  bench::LoadOptions base = LoadFor(e, *std::max_element(points.begin(), points.end()));
  int64_t malformed = 0;
  std::vector<std::string> trace_errors;
  auto workload = WorkloadFor(e, base, &malformed, &trace_errors);
  if (!workload.ok()) {
    std::fprintf(stderr, "tokenway-bench: %s\n", workload.status().message().c_str());
    return 2;
  }
  if (malformed > 0) {
    std::fprintf(stderr, "tokenway-bench: skipped %lld malformed trace line(s); first: %s\n",
                 static_cast<long long>(malformed), trace_errors.front().c_str());
  }
  std::vector<bench::RunSummary> runs;
  std::string costs;
  bool interrupted = false;
  const double target = e.simulation.goodput_attainment;
  std::string goodput_table, goodput_json;
  double first_goodput = -1;
  for (const auto& c : e.configurations) {
    const size_t first_run = runs.size();
    for (double rate : points) {
      if (stop && stop->load()) interrupted = true;
      if (interrupted) break;
      FleetResult raw;
      const auto t0 = std::chrono::steady_clock::now();
      auto s = SimulatePoint(e, c, rate, *fleet, *workload, stop, &raw);
      const double wall =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!s.ok()) {
        std::fprintf(stderr, "tokenway-bench: %s\n", s.status().message().c_str());
        return 2;
      }
      if (raw.interrupted) interrupted = true;
      runs.push_back(std::move(*s));
      char line[256];
      std::snprintf(line, sizeof line, "| %s | %s | %zu | %.1f | %llu | %llu | %.2f | %.2f M |\n",
                    c.name.c_str(), Num(rate).c_str(), raw.load.records.size(), raw.virtual_s,
                    static_cast<unsigned long long>(raw.events),
                    static_cast<unsigned long long>(raw.steps), wall,
                    wall > 0 ? static_cast<double>(raw.events) / wall / 1e6 : 0.0);
      costs += line;
      std::fprintf(stderr, "%s", bench::FormatTable({runs.back()}).c_str());
      if (opts.progress) {
        std::fprintf(stderr, "  %zu requests, %.1f s virtual, %llu events in %.2f s wall\n",
                     raw.load.records.size(), raw.virtual_s,
                     static_cast<unsigned long long>(raw.events), wall);
      }
    }
    if (target > 0 && !interrupted && !e.rates.empty()) {
      // Maximum goodput at the SLO: the highest offered rate whose attainment is at least the
      // target, bisected between the grid's last passing rate and the next one.
      std::vector<std::pair<double, double>> grid;  // rate, attainment
      for (size_t i = first_run; i < runs.size(); ++i) {
        grid.emplace_back(runs[i].offered_rate, runs[i].slo_attainment);
      }
      std::sort(grid.begin(), grid.end());
      double lo = 0, lo_att = 0, hi = 0;
      for (const auto& [r, a] : grid) {
        if (a >= target) {
          lo = r;
          lo_att = a;
        } else {
          hi = r;
          break;
        }
      }
      std::string note;
      if (lo == 0) {
        note = "below the lowest rate";
      } else if (hi == 0) {
        note = "at least (every rate passed)";
      } else {
        for (int step = 0; step < e.simulation.goodput_steps && !interrupted; ++step) {
          const double mid = (lo + hi) / 2;
          auto s = SimulatePoint(e, c, mid, *fleet, *workload, stop, nullptr);
          if (!s.ok()) {
            std::fprintf(stderr, "tokenway-bench: %s\n", s.status().message().c_str());
            return 2;
          }
          if (stop && stop->load()) {
            interrupted = true;  // a point cut short says nothing about its rate
            break;
          }
          std::fprintf(stderr, "%s  (goodput search: attainment %.3f)\n",
                       bench::FormatTable({*s}).c_str(), s->slo_attainment);
          if (s->slo_attainment >= target) {
            lo = mid;
            lo_att = s->slo_attainment;
          } else {
            hi = mid;
          }
        }
      }
      // The maximum goodput is the highest rate served within the SLO for the target share.
      if (first_goodput < 0) first_goodput = lo;  // the first configuration's
      char ratio[32] = "—";
      if (first_goodput > 0) std::snprintf(ratio, sizeof ratio, "%.2f", lo / first_goodput);
      char row[320];
      std::snprintf(row, sizeof row, "| %s | %s%s | %.1f %% | %s | %s |\n", c.name.c_str(),
                    note.empty() ? "" : (note + " ").c_str(), Num(lo).c_str(), lo_att * 100, ratio,
                    hi > 0 ? Num(hi).c_str() : "—");
      goodput_table += row;
      if (!goodput_json.empty()) goodput_json += ',';
      goodput_json += "{\"config\":";
      AppendJsonString(goodput_json, c.name);
      goodput_json += ",\"goodput\":" + Num(lo) + ",\"attainment\":" + Num(lo_att) +
                      ",\"failing_rate\":" + (hi > 0 ? Num(hi) : std::string("null")) +
                      ",\"every_rate_passed\":" + (hi == 0 && lo > 0 ? "true" : "false") + "}";
    }
  }

  // results.json: only what the inputs determine.
  const bench::SimulationSettings& ss = e.simulation;
  std::string fleet_desc =
      std::to_string(e.fleet_count) + " x " + e.fleet_profile + ", speed " + Num(e.fleet_speed);
  for (const auto& a : e.fleet_args) fleet_desc += " " + a;
  std::string meta = "{\"experiment\":";
  AppendJsonString(meta, e.name);
  meta += ",\"simulated\":true,\"fleet\":";
  AppendJsonString(meta, fleet_desc);
  meta += ",\"simulation\":{\"seed\":" + std::to_string(ss.seed) +
          ",\"gateway_replicas\":" + std::to_string(ss.gateway_replicas) +
          ",\"network_delay_s\":" + Num(ss.network_delay_s) +
          ",\"gateway_overhead_s\":" + Num(ss.gateway_overhead_s) +
          ",\"engine_metrics_interval_s\":" + Num(ss.engine_metrics_interval_s) +
          ",\"requests\":" + std::to_string(ss.requests) +
          ",\"trace_malformed_lines\":" + std::to_string(malformed) + "}";
  meta += ",\"interrupted\":";
  meta += interrupted ? "true" : "false";
  meta += ",\"configurations\":[";
  for (size_t i = 0; i < e.configurations.size(); ++i) {
    if (i) meta += ',';
    meta += "{\"name\":";
    AppendJsonString(meta, e.configurations[i].name);
    meta += ",\"gateway_config\":";
    AppendJsonString(meta, bench::GatewayYaml(e, e.configurations[i], {"<endpoint>"}));
    meta += '}';
  }
  meta += "]";
  if (target > 0) {
    meta +=
        ",\"max_goodput\":{\"attainment\":" + Num(target) + ",\"results\":[" + goodput_json + "]}";
  }
  meta += "}";

  std::string run_meta = bench::RunMetadataJson(opts.command_line);
  auto field = [&](const std::string& key) {
    size_t p = run_meta.find("\"" + key + "\":\"");
    if (p == std::string::npos) return std::string();
    p += key.size() + 4;
    return run_meta.substr(p, run_meta.find('"', p) - p);
  };
  std::string pre;
  pre +=
      "- **simulated** in virtual time (`tokenway-bench simulate`): tokenway-sim's engine model "
      "behind the real routing library, no sockets\n";
  pre += "- experiment file: `" + opts.file + "`\n";
  pre += "- workload: `" + e.workload.kind + "` (seed " + std::to_string(e.workload.seed) + "), " +
         std::to_string(workload->trace.empty() ? workload->items.size() : workload->trace.size()) +
         (workload->trace.empty() ? " distinct requests, " : " trace records, ") +
         (e.stream ? "streaming" : "non-streaming") + "\n";
  if (malformed > 0)
    pre += "- trace: " + std::to_string(malformed) + " malformed line(s) skipped\n";
  pre += "- load: " +
         (e.rates.empty() ? (e.concurrency > 0 ? "concurrency " + std::to_string(e.concurrency)
                                               : std::string("trace arrivals"))
                          : "Poisson arrivals at " + bench::FormatList(e.rates) + " req/s") +
         ", warm-up " + Num(e.warmup_s) + " s, " +
         (ss.requests > 0 ? std::to_string(ss.requests) + " measured requests"
                          : "measured " + Num(e.duration_s) + " s") +
         " per point\n";
  pre += "- fleet: " + fleet_desc + " (fresh per point)\n";
  pre += "- gateway: " + std::to_string(ss.gateway_replicas) + " replica(s), network delay " +
         Num(ss.network_delay_s * 1e6) + " µs one way, gateway overhead " +
         Num(ss.gateway_overhead_s * 1e6) + " µs, engine metrics every " +
         (ss.engine_metrics_interval_s > 0 ? Num(ss.engine_metrics_interval_s * 1e3) + " ms"
                                           : std::string("(gateway configuration)")) +
         ", seed " + std::to_string(ss.seed) + "\n";
  pre += "- SLO: " + (e.slo.any() ? e.slo.ToString() : std::string("none")) + "\n";
  pre += "- date: " + field("date") + "; commit: " + field("git_commit") +
         "; machine: " + field("machine") + "\n";
  if (interrupted) pre += "- **interrupted** (SIGINT): partial results\n";
  if (target > 0) {
    pre += "\n## Maximum goodput at the SLO\n\nThe highest offered rate at which at least " +
           Num(target * 100) + " % of measured requests met the SLO (" + e.slo.ToString() +
           "), bisected " + std::to_string(e.simulation.goodput_steps) +
           " times between the grid's last passing rate and the next one.\n\n| configuration | "
           "max goodput (req/s) | attainment there | × first | first failing rate "
           "|\n|---|---|---|---|---|\n" +
           goodput_table;
  }
  pre +=
      "\nSimulation cost (wall clock, one thread):\n\n"
      "| configuration | rate | requests | virtual s | events | engine steps | wall s | "
      "events/s |\n|---|---|---|---|---|---|---|---|\n" +
      costs + "\n";
  bench::WriteExperimentReport(e, runs, out_dir, meta, pre);
  return interrupted ? 130 : 0;
}

}  // namespace tokenway::fleetsim
