#include "bench/experiment.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <tuple>
#include <utility>

#include "bench/metrics_scrape.h"
#include "common/duration.h"
#include "common/json_writer.h"

namespace tokenway::bench {
namespace fs = std::filesystem;

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string CommandOutput(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  return Trim(out);
}

// A child process this tool started; stopped (SIGTERM, then SIGKILL) when destroyed.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { Stop(); }

  // Starts argv; stdout to a pipe (read with ReadLine) when `pipe_stdout`, else to `log`;
  // stderr to `log`.
  Status Start(const std::vector<std::string>& argv, const std::string& log, bool pipe_stdout) {
    int fds[2] = {-1, -1};
    if (pipe_stdout && pipe(fds) != 0) return Status::Error("pipe failed");
    int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    pid_ = fork();
    if (pid_ < 0) return Status::Error("fork failed");
    if (pid_ == 0) {
      setpgid(0, 0);  // our own group: a terminal's Ctrl-C reaches only tokenway-bench
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // and if tokenway-bench itself is killed, so are we
      if (pipe_stdout) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
      } else if (log_fd >= 0) {
        dup2(log_fd, 1);
      }
      if (log_fd >= 0) dup2(log_fd, 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    if (log_fd >= 0) close(log_fd);
    if (pipe_stdout) {
      close(fds[1]);
      out_fd_ = fds[0];
    }
    return Status::Ok();
  }

  // Reads one line from the child's stdout within `timeout_s`.
  StatusOr<std::string> ReadLine(double timeout_s) {
    std::string line;
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    fcntl(out_fd_, F_SETFL, fcntl(out_fd_, F_GETFL) | O_NONBLOCK);
    while (std::chrono::steady_clock::now() < deadline) {
      char c;
      ssize_t n = read(out_fd_, &c, 1);
      if (n == 1) {
        if (c == '\n') return line;
        line.push_back(c);
      } else if (n == 0) {
        return Status::Error("process exited before its ready line");
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    return Status::Error("no ready line within the timeout");
  }

  bool Running() {
    if (pid_ <= 0) return false;
    int st;
    return waitpid(pid_, &st, WNOHANG) == 0;
  }

  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st;
      for (int i = 0; i < 100; ++i) {
        if (waitpid(pid_, &st, WNOHANG) != 0) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &st, 0);
        pid_ = -1;
      }
    }
    if (out_fd_ >= 0) {
      close(out_fd_);
      out_fd_ = -1;
    }
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
};

// The ports a gateway started with port 0 bound, from its "listening on" log line; 0 while the
// line has not been written yet.
std::pair<int, int> ListeningPorts(const std::string& log_path) {
  std::ifstream f(log_path);
  std::string line;
  const std::string kListen = "listening on ", kAdmin = "admin on ";
  while (std::getline(f, line)) {
    size_t l = line.find(kListen), a = line.find(kAdmin);
    if (l == std::string::npos || a == std::string::npos) continue;
    size_t lc = line.find(' ', l + kListen.size());
    size_t lp = line.rfind(':', lc);
    size_t ac = line.find('"', a + kAdmin.size());
    size_t ap = line.rfind(':', ac);
    if (lp == std::string::npos || ap == std::string::npos) continue;
    return {std::atoi(line.c_str() + lp + 1), std::atoi(line.c_str() + ap + 1)};
  }
  return {0, 0};
}

std::vector<int> ParsePorts(const std::string& ready) {
  std::vector<int> ports;
  size_t pos = 0;
  while ((pos = ready.find("\"port\":", pos)) != std::string::npos) {
    pos += 7;
    ports.push_back(std::atoi(ready.c_str() + pos));
  }
  return ports;
}

double Seconds(const YAML::Node& n, const std::string& field) {
  auto d = ParseDuration(n.as<std::string>());
  if (!d.ok()) throw std::runtime_error(field + ": " + d.status().message());
  return std::chrono::duration<double>(*d).count();
}

}  // namespace

StatusOr<Experiment> LoadExperiment(const std::string& path) {
  Experiment e;
  try {
    std::ifstream in(path);
    if (!in) return Status::Error("cannot open " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    e.source_text = ss.str();
    YAML::Node root = YAML::Load(e.source_text);
    for (auto it : root) {
      std::string key = it.first.as<std::string>();
      const YAML::Node& v = it.second;
      if (key == "name")
        e.name = v.as<std::string>();
      else if (key == "out")
        e.out_dir = v.as<std::string>();
      else if (key == "rates")
        e.rates = v.as<std::vector<double>>();
      else if (key == "concurrency")
        e.concurrency = v.as<int64_t>();
      else if (key == "duration")
        e.duration_s = Seconds(v, key);
      else if (key == "warmup")
        e.warmup_s = Seconds(v, key);
      else if (key == "timeout")
        e.timeout_s = Seconds(v, key);
      else if (key == "drain")
        e.drain_s = Seconds(v, key);
      else if (key == "time_limit")
        e.time_limit_s = Seconds(v, key);
      else if (key == "stream")
        e.stream = v.as<bool>();
      else if (key == "slo") {
        auto slo = ParseSlo(v.as<std::string>());
        if (!slo.ok()) return Status::Error(path + ": slo: " + slo.status().message());
        e.slo = *slo;
      } else if (key == "workload") {
        WorkloadOptions& w = e.workload;
        for (auto f : v) {
          std::string k = f.first.as<std::string>();
          const YAML::Node& x = f.second;
          if (k == "kind")
            w.kind = x.as<std::string>();
          else if (k == "model")
            w.model = x.as<std::string>();
          else if (k == "seed")
            w.seed = x.as<uint64_t>();
          else if (k == "groups")
            w.shared_prefix.groups = x.as<int64_t>();
          else if (k == "prompts_per_group")
            w.shared_prefix.prompts_per_group = x.as<int64_t>();
          else if (k == "system_len") {
            w.shared_prefix.system_len = x.as<int64_t>();
            w.multi_turn.system_len = x.as<int64_t>();
          } else if (k == "question_len")
            w.shared_prefix.question_len = x.as<int64_t>();
          else if (k == "output_len") {
            w.shared_prefix.output_len = w.multi_turn.output_len = w.random.output_len =
                w.long_context.output_len = x.as<int64_t>();
          } else if (k == "input_len")
            w.random.input_len = x.as<int64_t>();
          else if (k == "range_ratio")
            w.random.range_ratio = x.as<double>();
          else if (k == "sessions")
            w.multi_turn.sessions = x.as<int64_t>();
          else if (k == "turns")
            w.multi_turn.turns = x.as<int64_t>();
          else if (k == "user_len")
            w.multi_turn.user_len = x.as<int64_t>();
          else if (k == "active_sessions")
            w.multi_turn.active_sessions = x.as<int64_t>();
          else if (k == "adapters")
            w.lora.adapters = x.as<int64_t>();
          else if (k == "zipf")
            w.lora.zipf_s = x.as<double>();
          else if (k == "lora_prefix")
            w.lora.prefix = x.as<std::string>();
          else if (k == "min_input")
            w.long_context.min_input = x.as<int64_t>();
          else if (k == "max_input")
            w.long_context.max_input = x.as<int64_t>();
          else if (k == "trace")
            w.trace.path = x.as<std::string>();
          else if (k == "trace_block_size")
            w.trace.block_size = x.as<int64_t>();
          else if (k == "trace_time_scale")
            w.trace.time_scale = x.as<double>();
          else if (k == "trace_max_output")
            w.trace.max_output = x.as<int64_t>();
          else
            return Status::Error(path + ":" + std::to_string(f.first.Mark().line + 1) +
                                 ": workload." + k + ": unknown field");
        }
      } else if (key == "fleet") {
        for (auto f : v) {
          std::string k = f.first.as<std::string>();
          if (k == "count")
            e.fleet_count = f.second.as<int64_t>();
          else if (k == "profile")
            e.fleet_profile = f.second.as<std::string>();
          else if (k == "speed")
            e.fleet_speed = f.second.as<double>();
          else if (k == "args")
            e.fleet_args = f.second.as<std::vector<std::string>>();
          else if (k == "loras")
            e.loras = f.second.as<std::vector<std::string>>();
          else
            return Status::Error(path + ":" + std::to_string(f.first.Mark().line + 1) + ": fleet." +
                                 k + ": unknown field");
        }
      } else if (key == "gateway") {
        for (auto f : v) {
          std::string k = f.first.as<std::string>();
          if (k == "workers")
            e.gateway_workers = f.second.as<int>();
          else
            return Status::Error(path + ":" + std::to_string(f.first.Mark().line + 1) +
                                 ": gateway." + k + ": unknown field");
        }
      } else if (key == "simulation") {
        SimulationSettings& sim = e.simulation;
        for (auto f : v) {
          std::string k = f.first.as<std::string>();
          const YAML::Node& x = f.second;
          if (k == "seed")
            sim.seed = x.as<uint64_t>();
          else if (k == "gateway_replicas")
            sim.gateway_replicas = x.as<int>();
          else if (k == "network_delay")
            sim.network_delay_s = Seconds(x, "simulation." + k);
          else if (k == "gateway_overhead")
            sim.gateway_overhead_s = Seconds(x, "simulation." + k);
          else if (k == "engine_metrics_interval")
            sim.engine_metrics_interval_s = Seconds(x, "simulation." + k);
          else if (k == "requests")
            sim.requests = x.as<int64_t>();
          else if (k == "itl_samples")
            sim.itl_samples = x.as<int64_t>();
          else if (k == "max_goodput") {
            for (auto g : x) {
              std::string gk = g.first.as<std::string>();
              if (gk == "attainment")
                sim.goodput_attainment = g.second.as<double>();
              else if (gk == "steps")
                sim.goodput_steps = g.second.as<int>();
              else
                return Status::Error(path + ": simulation.max_goodput." + gk + ": unknown field");
            }
            if (!(sim.goodput_attainment > 0 && sim.goodput_attainment <= 1) ||
                sim.goodput_steps < 0 || sim.goodput_steps > 20) {
              return Status::Error(path +
                                   ": simulation.max_goodput needs attainment in (0, 1] and "
                                   "steps in [0, 20]");
            }
          } else
            return Status::Error(path + ":" + std::to_string(f.first.Mark().line + 1) +
                                 ": simulation." + k + ": unknown field");
        }
        if (sim.gateway_replicas < 1) {
          return Status::Error(path + ": simulation.gateway_replicas must be at least 1");
        }
        if (sim.network_delay_s < 0 || sim.gateway_overhead_s < 0) {
          return Status::Error(path + ": simulation delays must not be negative");
        }
      } else if (key == "configurations") {
        for (auto c : v) {
          Configuration conf;
          conf.name = c["name"].as<std::string>();
          if (c["policy"]) conf.policy = c["policy"].as<std::string>();
          if (c["config"]) conf.config = c["config"].as<std::string>();
          if (conf.policy.empty() && conf.config.empty()) {
            return Status::Error(path + ": configuration '" + conf.name +
                                 "' needs `policy` or `config`");
          }
          e.configurations.push_back(conf);
        }
      } else {
        return Status::Error(path + ":" + std::to_string(it.first.Mark().line + 1) + ": " + key +
                             ": unknown field");
      }
    }
  } catch (const std::exception& ex) {
    return Status::Error(path + ": " + ex.what());
  }
  if (e.configurations.empty()) return Status::Error(path + ": no configurations");
  if (e.rates.empty() && e.concurrency <= 0 && e.workload.kind != "trace") {
    return Status::Error(path + ": give `rates` or `concurrency`");
  }
  return e;
}

std::string GatewayYaml(const Experiment& e, const Configuration& c,
                        const std::vector<std::string>& urls) {
  std::string eps;
  for (const auto& u : urls) eps += "      - " + u + "\n";
  // The workload's model and the fleet's LoRA adapters, all served by pool `fleet`.
  std::string models = "  - name: " + e.workload.model + "\n    pool: fleet\n";
  for (const auto& l : e.loras) {
    models += "  - name: " + l + "\n    pool: fleet\n    parent: " + e.workload.model + "\n";
  }
  if (!c.config.empty()) {
    std::string y = c.config;
    for (auto [ph, val] : {std::pair<std::string, std::string>{"{endpoints}", eps},
                           {"{models}", models},
                           {"{model}", e.workload.model}}) {
      size_t p;
      while ((p = y.find(ph)) != std::string::npos) y.replace(p, ph.size(), val);
    }
    return y;
  }
  std::string y = "pools:\n  - name: fleet\n    policy: " + c.policy + "\n    endpoints:\n" + eps;
  y += "models:\n" + models;
  y += "access_log:\n  enabled: false\n";
  return y;
}

namespace {

std::string Csv(const std::vector<double>& v) {
  std::string s;
  char buf[32];
  for (double x : v) {
    snprintf(buf, sizeof buf, "%g", x);
    s += (s.empty() ? "" : ", ") + std::string(buf);
  }
  return s;
}

}  // namespace

RunSummary RunPoint(const LoadOptions& options, const std::vector<WorkloadRequest>& workload,
                    const std::vector<std::string>& metrics_urls, const Slo& slo,
                    const std::string& label, const std::string& workload_name,
                    const std::atomic<bool>* stop) {
  StatusOr<PrefixCacheCounters> before = Status::Error("not scraped");
  if (!metrics_urls.empty()) before = ScrapePrefixCache(metrics_urls);
  LoadResult result = RunLoad(options, workload, stop);
  RunSummary s = Summarize(result, options, slo, label, workload_name);
  if (before.ok()) {
    auto after = ScrapePrefixCache(metrics_urls);
    if (after.ok()) {
      s.prefix_queries = after->queries - before->queries;
      s.prefix_hits = after->hits - before->hits;
      if (s.prefix_queries > 0) s.prefix_hit_rate = s.prefix_hits / s.prefix_queries;
      s.adapter_loads = after->lora_loads - before->lora_loads;
    }
  }
  return s;
}

int64_t WorkloadCountFor(const LoadOptions& o, const std::string& kind) {
  if (kind == "trace" || kind == "shared-prefix" || kind == "shared-prefix-long" ||
      kind == "multi-turn") {
    return 0;
  }
  double n = 2000;
  if (o.rate > 0) {
    n = o.duration_s > 0 ? o.rate * (o.warmup_s + o.duration_s) * 1.2 + 50
                         : o.requests + o.rate * o.warmup_s * 1.2 + 50;
  } else if (o.requests > 0) {
    n = o.requests + 100;
  }
  // Beyond this many distinct prompts the pool is reused cyclically.
  double cap = kind == "long-context" ? 100 : 20000;
  return static_cast<int64_t>(std::min(n, cap));
}

std::string RunMetadataJson(const std::string& command_line) {
  char date[64];
  time_t now = time(nullptr);
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  utsname u{};
  uname(&u);
  std::string cpu = CommandOutput("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
  std::string machine = std::string(u.sysname) + " " + u.release + " " + u.machine + ", " +
                        std::to_string(std::thread::hardware_concurrency()) + " cores," + cpu;
  std::string commit =
      CommandOutput("git -C " TOKENWAY_SOURCE_DIR " rev-parse --short HEAD 2>/dev/null");
  std::string dirty =
      CommandOutput("git -C " TOKENWAY_SOURCE_DIR " status --porcelain 2>/dev/null | head -1");
  if (!dirty.empty()) commit += " (with uncommitted changes)";
  std::string out = "{\"date\":";
  AppendJsonString(out, date);
  out += ",\"git_commit\":";
  AppendJsonString(out, commit);
  out += ",\"machine\":";
  AppendJsonString(out, machine);
  out += ",\"command\":";
  AppendJsonString(out, command_line);
  out += '}';
  return out;
}

void WriteExperimentReport(const Experiment& e, const std::vector<RunSummary>& runs,
                           const std::string& out_dir, const std::string& meta_full,
                           const std::string& pre) {
  std::vector<double> points = e.rates.empty() ? std::vector<double>{0} : e.rates;
  {
    std::ofstream f(out_dir + "/results.json");
    f << ToJson(runs, meta_full);
  }
  // Plots.
  std::vector<std::pair<std::string, std::string>> plots;
  auto by_config = [&](auto metric) {
    std::vector<Series> series;
    for (const auto& c : e.configurations) {
      Series s{c.name, {}};
      for (const auto& r : runs) {
        if (r.label == c.name) s.points.emplace_back(r.offered_rate, metric(r));
      }
      if (!s.points.empty()) series.push_back(std::move(s));
    }
    return series;
  };
  if (!runs.empty() && points.size() > 1) {
    plots.emplace_back("ttft_p90_vs_rate.svg",
                       SvgPlot("TTFT p90 vs offered rate", "offered rate (req/s)", "TTFT p90 (ms)",
                               by_config([](const RunSummary& r) { return r.ttft.p90 * 1e3; })));
    plots.emplace_back("ttft_p50_vs_rate.svg",
                       SvgPlot("TTFT p50 vs offered rate", "offered rate (req/s)", "TTFT p50 (ms)",
                               by_config([](const RunSummary& r) { return r.ttft.p50 * 1e3; })));
    plots.emplace_back("tpot_p90_vs_rate.svg",
                       SvgPlot("TPOT p90 vs offered rate", "offered rate (req/s)", "TPOT p90 (ms)",
                               by_config([](const RunSummary& r) { return r.tpot.p90 * 1e3; })));
    plots.emplace_back(
        "goodput_vs_rate.svg",
        SvgPlot("Goodput (" + e.slo.ToString() + ") vs offered rate", "offered rate (req/s)",
                "goodput (req/s)", by_config([](const RunSummary& r) { return r.goodput; })));
    plots.emplace_back(
        "throughput_vs_rate.svg",
        SvgPlot("Output tokens/s vs offered rate", "offered rate (req/s)", "output tok/s",
                by_config([](const RunSummary& r) { return r.output_token_rate; })));
  }
  if (!runs.empty()) {
    double top = 0;
    for (const auto& r : runs) top = std::max(top, r.offered_rate);
    std::vector<Series> cdf;
    for (const auto& r : runs) {
      if (r.offered_rate != top || r.ttft_sorted.empty()) continue;
      Series s{r.label, {}};
      size_t n = r.ttft_sorted.size(), step = std::max<size_t>(1, n / 200);
      for (size_t i = 0; i < n; i += step) {
        s.points.emplace_back(r.ttft_sorted[i] * 1e3, static_cast<double>(i + 1) / n);
      }
      s.points.emplace_back(r.ttft_sorted.back() * 1e3, 1.0);
      cdf.push_back(std::move(s));
    }
    if (!cdf.empty()) {
      plots.emplace_back("ttft_cdf.svg",
                         SvgPlot("TTFT CDF at " + std::to_string(top).substr(0, 5) + " req/s",
                                 "TTFT (ms)", "fraction of requests", cdf));
    }
  }
  for (const auto& [name, svg] : plots) {
    std::ofstream f(out_dir + "/" + name);
    f << svg;
  }
  std::string md = ToMarkdown(runs, "Experiment: " + e.name, pre);
  if (!plots.empty()) {
    md += "\n## Plots\n\n";
    for (const auto& [name, svg] : plots) md += "![" + name + "](" + name + ")\n";
  }
  {
    std::ofstream f(out_dir + "/report.md");
    f << md;
  }
  printf("%s", FormatTable(runs).c_str());
  printf("report: %s/report.md  results: %s/results.json\n", out_dir.c_str(), out_dir.c_str());
}

std::string FormatList(const std::vector<double>& values) {
  return Csv(values);
}

int RunExperiment(const ExperimentOptions& opts, const std::atomic<bool>* stop) {
  auto loaded = LoadExperiment(opts.file);
  if (!loaded.ok()) {
    fprintf(stderr, "tokenway-bench: %s\n", loaded.status().message().c_str());
    return 2;
  }
  Experiment& e = *loaded;
  for (const auto& c : e.configurations) {
    if (c.policy == "oracle" && c.config.empty()) {
      fprintf(stderr,
              "tokenway-bench: %s: configuration '%s': the oracle exists only in "
              "`tokenway-bench simulate` (it reads the engines' true state)\n",
              opts.file.c_str(), c.name.c_str());
      return 2;
    }
  }
  std::string out_dir = opts.out_dir.empty() ? e.out_dir : opts.out_dir;
  std::error_code fec;
  fs::create_directories(out_dir, fec);
  if (fec) {
    fprintf(stderr, "tokenway-bench: cannot create %s: %s\n", out_dir.c_str(),
            fec.message().c_str());
    return 2;
  }
  std::string bin = opts.bin_dir;
  auto find = [&](const std::string& name) {
    for (const char* sub : {"/", "/src/main/"}) {
      std::string p = bin + sub + name;
      if (access(p.c_str(), X_OK) == 0) return p;
    }
    return bin + "/" + name;
  };
  std::string sim_bin = find("tokenway-sim"), gw_bin = find("tokenway");
  for (const auto& b : {sim_bin, gw_bin}) {
    if (access(b.c_str(), X_OK) != 0) {
      fprintf(stderr, "tokenway-bench: %s not found (use --bin-dir)\n", b.c_str());
      return 2;
    }
  }
  std::vector<double> points = e.rates.empty() ? std::vector<double>{0} : e.rates;
  // Generate enough distinct prompts for the highest rate once; every configuration gets the
  // same requests in the same order.
  LoadOptions base;
  base.stream = e.stream;
  base.duration_s = e.duration_s;
  base.warmup_s = e.warmup_s;
  base.timeout_s = e.timeout_s;
  base.drain_s = e.drain_s;
  base.seed = e.workload.seed;
  base.progress = opts.progress;
  base.concurrency = e.concurrency;
  base.trace_arrivals = e.workload.kind == "trace";
  base.rate = *std::max_element(points.begin(), points.end());
  auto workload = GenerateWorkload(e.workload, WorkloadCountFor(base, e.workload.kind));
  if (!workload.ok()) {
    fprintf(stderr, "tokenway-bench: %s\n", workload.status().message().c_str());
    return 2;
  }
  double per_point = e.warmup_s + e.duration_s + e.drain_s + 10;
  double limit = e.time_limit_s > 0
                     ? e.time_limit_s
                     : e.configurations.size() * points.size() * (per_point + 30) + 30;
  // The time limit raises the same flag as SIGINT.
  std::atomic<bool> local_stop{false};
  std::atomic<bool> finished{false};
  std::thread watchdog([&] {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(limit * 1000));
    while (!finished.load()) {
      if ((stop && stop->load()) || std::chrono::steady_clock::now() > deadline) {
        if (!local_stop.exchange(true) && !(stop && stop->load())) {
          fprintf(stderr, "tokenway-bench: time limit of %.0f s reached; stopping\n", limit);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  std::vector<RunSummary> runs;
  std::string fleet_desc;
  int status = 0;
  for (size_t point = 0; point < e.configurations.size() * points.size() && status == 0; ++point) {
    if (local_stop.load()) break;
    const Configuration& conf = e.configurations[point / points.size()];
    const double rate = points[point % points.size()];
    // A fresh fleet and gateway for every point: each (configuration, rate) starts with cold
    // caches and idle engines, so points do not inherit each other's state.
    Child sim;
    std::vector<std::string> sim_argv = {sim_bin,
                                         "--port",
                                         "0",
                                         "--count",
                                         std::to_string(e.fleet_count),
                                         "--profile",
                                         e.fleet_profile,
                                         "--speed",
                                         Csv({e.fleet_speed}),
                                         "--seed",
                                         std::to_string(e.workload.seed)};
    for (const auto& l : e.loras) sim_argv.insert(sim_argv.end(), {"--lora", l});
    sim_argv.insert(sim_argv.end(), e.fleet_args.begin(), e.fleet_args.end());
    fleet_desc.clear();
    for (size_t i = 1; i < sim_argv.size(); ++i) fleet_desc += sim_argv[i] + " ";
    Status st = sim.Start(sim_argv, out_dir + "/sim-" + conf.name + ".log", true);
    auto ready = st.ok() ? sim.ReadLine(20) : StatusOr<std::string>(st);
    if (!ready.ok()) {
      fprintf(stderr, "tokenway-bench: tokenway-sim: %s (see %s/sim-%s.log)\n",
              ready.status().message().c_str(), out_dir.c_str(), conf.name.c_str());
      status = 1;
      continue;
    }
    std::vector<std::string> urls, metrics_urls;
    for (int p : ParsePorts(*ready)) {
      urls.push_back("http://127.0.0.1:" + std::to_string(p));
      metrics_urls.push_back(urls.back() + "/metrics");
    }
    std::string cfg_path = out_dir + "/gateway-" + conf.name + ".yaml";
    {
      std::ofstream f(cfg_path);
      f << GatewayYaml(e, conf, urls);
    }
    // Port 0: the kernel picks free ports; the gateway's start-up log line names them.
    Child gw;
    std::string gw_log = out_dir + "/gateway-" + conf.name + ".log";
    std::remove(gw_log.c_str());
    st =
        gw.Start({gw_bin, "--config", cfg_path, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                  "--workers", std::to_string(e.gateway_workers), "--no-access-log"},
                 gw_log, false);
    bool up = false;
    int port = 0, admin = 0;
    for (int i = 0; st.ok() && i < 200 && !local_stop.load(); ++i) {
      if (admin == 0) std::tie(port, admin) = ListeningPorts(gw_log);
      if (admin != 0 && HttpGet("http://127.0.0.1:" + std::to_string(admin) + "/healthz", 1).ok()) {
        up = true;
        break;
      }
      if (!gw.Running()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!up) {
      fprintf(stderr, "tokenway-bench: gateway '%s' did not start (see %s/gateway-%s.log)\n",
              conf.name.c_str(), out_dir.c_str(), conf.name.c_str());
      status = 1;
      continue;
    }
    LoadOptions o = base;
    o.rate = base.trace_arrivals ? 0 : rate;
    o.target = Target{"127.0.0.1", static_cast<uint16_t>(port), "/v1/chat/completions"};
    o.progress_label = conf.name + " @ " + Csv({rate});
    runs.push_back(
        RunPoint(o, *workload, metrics_urls, e.slo, conf.name, e.workload.kind, &local_stop));
    fprintf(stderr, "%s", FormatTable({runs.back()}).c_str());
    gw.Stop();
    sim.Stop();
  }
  finished = true;
  watchdog.join();
  bool interrupted = local_stop.load();

  // The report: configurations, commit, machine, table, plots.
  std::string meta = RunMetadataJson(opts.command_line);
  std::string meta_full = meta.substr(0, meta.size() - 1) + ",\"experiment\":";
  AppendJsonString(meta_full, e.name);
  meta_full += ",\"fleet\":";
  AppendJsonString(meta_full, "tokenway-sim " + fleet_desc);
  meta_full += ",\"interrupted\":";
  meta_full += interrupted ? "true" : "false";
  meta_full += ",\"configurations\":[";
  for (size_t i = 0; i < e.configurations.size(); ++i) {
    if (i) meta_full += ',';
    meta_full += "{\"name\":";
    AppendJsonString(meta_full, e.configurations[i].name);
    meta_full += ",\"gateway_config\":";
    AppendJsonString(meta_full, GatewayYaml(e, e.configurations[i], {"<endpoint>"}));
    meta_full += '}';
  }
  meta_full += "]}";
  std::string pre;
  pre += "- experiment file: `" + opts.file + "`\n";
  pre += "- workload: `" + e.workload.kind + "` (seed " + std::to_string(e.workload.seed) + "), " +
         std::to_string(workload->size()) + " distinct requests, " +
         (e.stream ? "streaming" : "non-streaming") + "\n";
  pre += "- load: " +
         (e.rates.empty() ? "concurrency " + std::to_string(e.concurrency)
                          : "Poisson arrivals at " + Csv(e.rates) + " req/s") +
         ", warm-up " + Csv({e.warmup_s}) + " s, measured " + Csv({e.duration_s}) +
         " s per point\n";
  pre += "- fleet: `tokenway-sim " + fleet_desc + "` (a fresh fleet and gateway per point)\n";
  pre += "- gateway: " + std::to_string(e.gateway_workers) + " worker(s); configurations: ";
  for (size_t i = 0; i < e.configurations.size(); ++i) {
    const auto& c = e.configurations[i];
    pre += (i ? ", " : "") + std::string("`") + c.name + "` (" +
           (c.config.empty() ? "policy " + c.policy : std::string("custom config")) + ")";
  }
  pre += "\n- SLO: " + (e.slo.any() ? e.slo.ToString() : std::string("none")) + "\n";
  std::string m = meta;
  auto field = [&](const std::string& key) {
    size_t p = m.find("\"" + key + "\":\"");
    if (p == std::string::npos) return std::string();
    p += key.size() + 4;
    return m.substr(p, m.find('"', p) - p);
  };
  pre += "- date: " + field("date") + "; commit: " + field("git_commit") +
         "; machine: " + field("machine") + "\n";
  if (interrupted) pre += "- **interrupted** (SIGINT or time limit): partial results\n";
  pre += "- gateway configurations as run: `gateway-<name>.yaml` next to this report\n";
  WriteExperimentReport(e, runs, out_dir, meta_full, pre);
  if (interrupted && status == 0) status = 130;
  return status;
}

}  // namespace tokenway::bench
