// OtlpExporter: sends finished spans to an OTLP/HTTP collector (POST <endpoint>/v1/traces,
// JSON) from a background thread, so export never blocks or slows a request.
//
// Workers hand spans over with Submit(): the span is encoded straight into the worker's own
// buffer under that buffer's lock, which only the exporter thread also takes, for the moment it
// swaps the buffer out; only sampled requests ever take it. The number of spans waiting is
// bounded by queue_size across all workers; a span that finds the queue full is dropped and
// counted. The thread wakes every batch_interval, or sooner once a batch is waiting, and posts
// batches of at most batch_size spans, each with one deadline of `timeout`. It retries a batch
// only on 429, 502, 503 and 504 (honouring Retry-After, up to kMaxAttempts tries), never on
// other answers; a batch that fails is counted and its spans are lost. Stop() posts what is
// still waiting (one try each, all within one `timeout`) and joins the thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/duration.h"
#include "telemetry/otlp_endpoint.h"
#include "tokenway/status.h"

namespace tokenway {

// The tracing section (filled by the YAML walk in control/): one span per sampled request,
// exported as OTLP/HTTP JSON by an OtlpExporter built from these settings. sample_ratio and
// provider_name apply on reload; the rest only on restart.
struct TracingConfig {
  bool enabled = false;
  std::string endpoint = "http://127.0.0.1:4318";  // base URL; /v1/traces is appended
  double sample_ratio = 0.1;  // for requests without a valid traceparent (parent-based otherwise)
  std::string service_name = "tokenway";
  std::string provider_name;  // gen_ai.provider.name; empty: the endpoint's engine (vllm, ...)
  uint32_t batch_size = 512;
  Duration batch_interval = std::chrono::seconds(1);
  uint32_t queue_size = 2048;
  Duration timeout = std::chrono::seconds(10);
};

struct OtlpExporterOptions {
  std::string endpoint;  // base URL, "http://host:port[/prefix]"; /v1/traces is appended
  std::string service_name = "tokenway";
  uint32_t workers = 1;  // Submit() slots, one per worker thread
  uint32_t batch_size = 512;
  Duration batch_interval = std::chrono::seconds(1);
  uint32_t queue_size = 2048;
  Duration timeout = std::chrono::seconds(10);
};

struct OtlpExporterStats {
  uint64_t spans_exported = 0;
  uint64_t spans_dropped = 0;  // the queue was full
  uint64_t spans_failed = 0;   // their batch could not be delivered
  uint64_t batches_ok = 0;
  uint64_t batches_failed = 0;
  uint64_t batches_retried = 0;  // retry attempts after 429/502/503/504
};

class OtlpExporter {
 public:
  static constexpr int kMaxAttempts = 3;

  // Fails when the endpoint is not a usable http:// URL. The thread starts at once.
  static StatusOr<std::unique_ptr<OtlpExporter>> Create(OtlpExporterOptions options);
  ~OtlpExporter();  // Stop()
  OtlpExporter(const OtlpExporter&) = delete;
  OtlpExporter& operator=(const OtlpExporter&) = delete;

  // Worker thread `worker`: queues one span that `encode(std::string&)` appends as an OTLP Span
  // JSON object. Returns false (and counts a drop) when the queue is full; never waits for I/O.
  template <class Encode>
  bool Submit(uint32_t worker, Encode&& encode) {
    uint32_t before = pending_.fetch_add(1, std::memory_order_relaxed);
    if (before >= options_.queue_size || worker >= slots_.size()) {
      pending_.fetch_sub(1, std::memory_order_relaxed);
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    Slot& slot = *slots_[worker];
    {
      std::lock_guard<std::mutex> lock(slot.mu);
      encode(slot.buffer.spans);
      slot.buffer.ends.push_back(static_cast<uint32_t>(slot.buffer.spans.size()));
    }
    if ((before + 1) % options_.batch_size == 0) wake_.notify_one();
    return true;
  }

  // Posts what is waiting (one try per batch, all within one `timeout`; what does not fit is
  // counted as failed) and joins the thread. Idempotent.
  void Stop();

  OtlpExporterStats stats() const;
  const OtlpExporterOptions& options() const { return options_; }

 private:
  struct SpanBuffer {
    std::string spans;           // encoded spans back to back
    std::vector<uint32_t> ends;  // end offset of each span in `spans`
  };
  struct Slot {
    std::mutex mu;
    SpanBuffer buffer;
  };
  class Client;

  OtlpExporter(OtlpExporterOptions options, OtlpTarget target);
  void Run();
  // Takes every worker's spans; returns how many.
  size_t Collect();
  // Posts the collected spans in batches.
  void ExportCollected(bool stopping);
  void PostBatch(const std::string& body, uint32_t spans, bool stopping);

  const OtlpExporterOptions options_;
  const OtlpTarget target_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<SpanBuffer> taken_;  // exporter thread only: what Collect() swapped out
  std::unique_ptr<Client> client_;
  std::atomic<uint32_t> pending_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> exported_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> batches_ok_{0};
  std::atomic<uint64_t> batches_failed_{0};
  std::atomic<uint64_t> batches_retried_{0};
  std::mutex wake_mu_;
  std::condition_variable wake_;
  bool stop_ = false;                                    // under wake_mu_
  std::chrono::steady_clock::time_point stop_deadline_;  // exporter thread, once stopping
  std::thread thread_;
};

class PrometheusText;
// Appends tokenway_trace_spans_total{outcome} and tokenway_trace_export_batches_total{result}
// (zeros when `exporter` is null: tracing off). Control thread (admin /metrics).
void RenderTraceMetrics(PrometheusText& text, const OtlpExporter* exporter);

}  // namespace tokenway
