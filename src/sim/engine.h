// The simulated inference engine of one endpoint: continuous batching in steps over a paged KV
// cache with automatic prefix caching and LoRA slots, timed by a HardwareProfile.
//
// The engine knows nothing about networking or wall clocks. Its owner (the HTTP endpoint, or a
// unit test with a fake clock) drives it: BeginStep(now) schedules one step and returns how long
// the step takes in engine seconds; FinishStep(end) makes that step's tokens visible. Every
// method runs on the owner's thread. Memory is bounded by max_num_seqs, the KV pool and the
// owner's waiting-queue limit, not by traffic.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sim/histogram.h"
#include "sim/kv_cache.h"
#include "sim/lora_slots.h"
#include "sim/profiles.h"

namespace tokenway::sim {

enum class FinishReason { kNone, kStop, kLength, kAbort };
std::string_view FinishReasonName(FinishReason reason);

struct EngineConfig {
  HardwareProfile profile;
  std::string model_name = "meta-llama/Llama-3.1-8B-Instruct";
  int max_loras = 4;
  int64_t kv_blocks = 0;  // 0: profile.kv_pool_tokens / block_size
  uint64_t seed = 0;
  // false: TokenEvent::text stays empty (unless a stop string needs it), for owners that count
  // tokens but never send them (the fleet simulator); looking the word up costs a cache miss.
  bool emit_text = true;
  // true: when a request is queued, look up how much of it the prefix cache holds, for
  // queued_uncached_tokens() (one cache walk per queued request; the fleet simulator's oracle).
  bool estimate_queued_prefill = false;
};

struct GenerationRequest {
  std::vector<uint32_t> prompt_tokens;
  std::string adapter;  // empty: the base model
  int64_t max_output_tokens = 16;
  bool limit_is_eos = false;  // true: the limit stands for a sampled EOS (finish "stop")
  std::vector<std::string> stop;
  uint64_t seed = 0;  // picks the pseudo-words
  uint64_t tag = 0;   // the owner's own name for the request, returned in its TokenEvents
};

// One output token made visible by FinishStep.
struct TokenEvent {
  uint64_t request_id = 0;
  std::string_view text;  // the token's text (cut before a matched stop string)
  FinishReason finish = FinishReason::kNone;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // including this token
  int64_t cached_tokens = 0;
  uint64_t tag = 0;  // GenerationRequest::tag
};

struct EngineStats {
  uint64_t prompt_tokens = 0;
  uint64_t generation_tokens = 0;
  uint64_t prefix_cache_queries = 0;
  uint64_t prefix_cache_hits = 0;
  uint64_t preemptions = 0;
  uint64_t success_stop = 0;
  uint64_t success_length = 0;
  uint64_t success_abort = 0;
  uint64_t steps = 0;
  uint64_t lora_loads = 0;
  Histogram time_to_first_token{TimeToFirstTokenBuckets()};
  Histogram inter_token_latency{InterTokenLatencyBuckets()};
  Histogram e2e_request_latency{RequestLatencyBuckets()};
  Histogram request_queue_time{RequestLatencyBuckets()};
};

class Engine {
 public:
  explicit Engine(EngineConfig config);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request arriving at engine time `now`; returns its id (never 0).
  uint64_t Add(GenerationRequest request, double now);
  // Drops a request (client gone): frees its KV blocks and slot; counted as finished "abort".
  void Abort(uint64_t request_id, double now);

  // Schedules one step at `now` and returns its duration in engine seconds, or 0 when nothing
  // can run. Must be followed by FinishStep before the next BeginStep.
  double BeginStep(double now);
  // Completes the step begun last; `now` is its end time. The returned events stay valid until
  // the next call to FinishStep.
  const std::vector<TokenEvent>& FinishStep(double now);

  // Start loading what FinishStep and BeginStep read first, so that with many engines in one
  // process the misses overlap with other work: an owner that knows which engine steps next
  // calls PrefetchState two events ahead and PrefetchBatch (which reads the state) one event
  // ahead. Hints only; they change nothing.
  void PrefetchState() const;
  void PrefetchBatch() const;

  bool HasWork() const { return num_running() > 0 || !waiting_.empty(); }
  bool step_in_flight() const { return step_in_flight_; }
  std::size_t num_running() const { return running_.size() - aborted_running_; }
  std::size_t num_waiting() const { return waiting_.size(); }
  double kv_usage() const { return pool_.Usage(); }
  const KvBlockPool& kv_pool() const { return pool_; }
  int64_t max_model_len() const { return max_model_len_; }
  const EngineConfig& config() const { return config_; }
  const EngineStats& stats() const { return stats_; }
  std::vector<std::string> RunningAdapters() const { return lora_slots_.RunningAdapters(); }
  std::vector<std::string> WaitingAdapters() const;
  void UnloadAdapter(std::string_view adapter) { lora_slots_.Evict(adapter); }
  // Tokens scheduled / summed context of the last step begun (for tests and validation).
  int64_t last_step_tokens() const { return last_step_tokens_; }
  int64_t last_step_context() const { return last_step_context_; }
  // Work the engine holds, kept up to date in O(1) per change so that a caller can read it for
  // every endpoint on every request (the fleet simulator's oracle): tokens of every queued or
  // running sequence not yet computed (whole prompts of waiting requests, the rest of running
  // prefills, one per decoding sequence), and tokens computed and held by running sequences
  // (the context a step attends over).
  int64_t uncomputed_tokens() const { return live_tokens_ - live_computed_; }
  int64_t computed_tokens() const { return live_computed_; }
  // Of uncomputed_tokens(): those of the waiting queue, and (with estimate_queued_prefill) the
  // part of them that was not in the prefix cache when each request was queued — the prefill the
  // queue will really compute if the cache keeps those blocks. Without it, all of them.
  int64_t queued_tokens() const { return queued_tokens_; }
  int64_t queued_uncached_tokens() const { return queued_uncached_; }

 private:
  struct Sequence;
  // A running sequence as the step loop sees it: everything a decode step reads and writes, kept
  // contiguous in admission order so that a step over a batch touches a few cache lines instead
  // of one scattered Sequence per token (a fleet of engines does not fit in the caches). While a
  // sequence runs these fields are the authoritative copy; Park writes them back to the Sequence
  // when it leaves the batch. Output tokens are appended to Sequence::tokens only when a full
  // block needs hashing or the sequence is preempted (MaterializeOutput): each one is a pure
  // function of the request seed and its position, so the result is the same token array.
  struct Running {
    Sequence* seq = nullptr;
    const uint32_t* token_tail = nullptr;  // where seq->tokens grows next (a prefetch hint)
    uint64_t id = 0;
    uint64_t tag = 0;
    uint64_t sample_seed = 0;  // request.seed
    double last_token_time = 0;
    int64_t max_output = 0;
    // Token counts of one sequence fit in 32 bits (a longer one would not fit in memory).
    int32_t num_computed = 0;
    int32_t len = 0;  // prompt + output tokens
    int32_t output_len = 0;
    int32_t cached_tokens = 0;
    int32_t step_tokens = 0;  // scheduled in the step in flight
    int32_t num_blocks = 0;   // seq->blocks.size()
    int32_t registered_blocks = 0;
    bool limit_is_eos = false;
    bool needs_text = false;  // stop strings: the output text is kept
    bool done = false;        // finished or aborted during the step; dropped by FinishStep
  };
  bool AllocateFor(Sequence& seq, int64_t new_tokens);
  bool Admit(Sequence& seq, int64_t budget, int64_t& scheduled_tokens);
  Running StartRunning(Sequence& seq) const;
  void Park(const Running& run);
  void MaterializeOutput(Sequence& seq, uint64_t request_seed, int64_t output_len);
  void Preempt(Running& run);
  void ReleaseBlocks(Sequence& seq);
  void Finish(Sequence& seq, FinishReason reason, double now);
  void RegisterFullBlocks(Running& run);
  void SetComputed(Sequence& seq, int64_t computed);
  void Enqueued(Sequence& seq);
  void Dequeued(Sequence& seq);
  std::size_t SampleIndex(uint64_t request_seed, int64_t output_index) const;

  EngineConfig config_;
  KvBlockPool pool_;
  LoraSlots lora_slots_;
  int64_t max_model_len_;
  uint64_t sample_mix_;  // the engine seed's part of every sampled token
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Sequence>> sequences_;
  // Admission order; the newest is preempted first. The first num_scheduled_ entries are the
  // step in flight. An abort during a step marks its entry done instead of removing it.
  std::vector<Running> running_;
  std::size_t num_scheduled_ = 0;
  std::size_t aborted_running_ = 0;  // entries marked done by an abort during the step
  std::deque<Sequence*> waiting_;
  std::vector<std::unique_ptr<Sequence>> aborted_in_step_;  // freed by FinishStep
  std::vector<BlockId> cached_scratch_;                     // Admit's cache lookups
  std::vector<Sequence*> skipped_scratch_;                  // BeginStep's LoRA waiters
  std::vector<const Running*> touched_scratch_;             // FinishStep's prefetches
  std::vector<TokenEvent> events_;
  bool step_in_flight_ = false;
  int64_t last_step_tokens_ = 0;
  int64_t last_step_context_ = 0;
  int64_t live_tokens_ = 0;      // Σ tokens of live sequences
  int64_t live_computed_ = 0;    // Σ computed tokens of live sequences
  int64_t queued_tokens_ = 0;    // Σ tokens of waiting sequences
  int64_t queued_uncached_ = 0;  // Σ their uncached part when queued
  EngineStats stats_;
};

}  // namespace tokenway::sim
