#include "sim/engine.h"

#include <algorithm>
#include <utility>

#include "common/tokenizer.h"
#include "sim/prefix_cache.h"

namespace tokenway::sim {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
    case FinishReason::kNone:
      break;
  }
  return "";
}

struct alignas(64) Engine::Sequence {
  // The first cache line holds what a step needs when a block fills (the token, hash and block
  // arrays, the prompt length and the hash seed), so FinishStep prefetches one line per sequence.
  std::vector<uint32_t> tokens;  // prompt, then the output as far as it is materialised
  std::vector<uint64_t> block_hashes;
  int64_t prompt_len = 0;
  uint64_t hash_seed = 0;
  std::vector<BlockId> blocks;
  // While the sequence runs, its Running entry holds the current num_computed, output_len,
  // last_token_time and registered_blocks; these copies are up to date whenever it is not running.
  uint64_t id = 0;
  int64_t num_computed = 0;
  int64_t output_len = 0;
  int64_t cached_tokens = 0;
  std::size_t registered_blocks = 0;  // leading blocks already in the prefix cache
  double last_token_time = 0;
  double arrival = 0;
  int64_t queued_tokens = 0;    // while waiting: its length, and
  int64_t queued_uncached = 0;  // the part of it not in the prefix cache when it was queued
  bool ever_scheduled = false;
  bool holds_lora = false;
  GenerationRequest request;
  std::string output_text;  // kept only when stop strings need it
};

Engine::Engine(EngineConfig config)
    : config_(std::move(config)),
      pool_(config_.kv_blocks > 0 ? config_.kv_blocks
                                  : config_.profile.kv_pool_tokens / config_.profile.block_size,
            config_.profile.block_size),
      lora_slots_(config_.max_loras),
      sample_mix_(config_.seed * 0x51ED27ull) {
  tokenizer::PseudoWordVocabulary::Get();  // build it now, not inside the first timed step
  max_model_len_ = std::min<int64_t>(config_.profile.max_model_len,
                                     pool_.num_blocks() * config_.profile.block_size);
}

Engine::~Engine() = default;

std::size_t Engine::SampleIndex(uint64_t request_seed, int64_t output_index) const {
  return SplitMix64(request_seed ^ (static_cast<uint64_t>(output_index) << 20) ^ sample_mix_) %
         tokenizer::PseudoWordVocabulary::Get().size();
}

uint64_t Engine::Add(GenerationRequest request, double now) {
  auto seq = std::make_unique<Sequence>();
  seq->id = next_id_++;
  seq->tokens = std::move(request.prompt_tokens);
  if (seq->tokens.empty()) seq->tokens.push_back(0);  // vLLM prepends BOS; never empty
  seq->prompt_len = static_cast<int64_t>(seq->tokens.size());
  seq->request = std::move(request);
  // At least one token; at most what keeps a sequence's length within the 32-bit counts of
  // the running batch (owners cap it far lower: max_model_len).
  seq->request.max_output_tokens = std::clamp<int64_t>(
      seq->request.max_output_tokens, 1, std::max<int64_t>(1, INT32_MAX - seq->prompt_len));
  seq->hash_seed = PrefixHashSeed(
      seq->request.adapter.empty() ? std::string_view(config_.model_name) : seq->request.adapter);
  ExtendBlockHashes(seq->hash_seed, seq->tokens, pool_.block_size(), seq->block_hashes);
  seq->arrival = now;
  live_tokens_ += seq->prompt_len;
  const uint64_t id = seq->id;
  Enqueued(*seq);
  waiting_.push_back(seq.get());
  sequences_.emplace(id, std::move(seq));
  return id;
}

void Engine::Abort(uint64_t request_id, double now) {
  auto it = sequences_.find(request_id);
  if (it == sequences_.end()) return;
  Sequence& seq = *it->second;
  if (auto w = std::find(waiting_.begin(), waiting_.end(), &seq); w != waiting_.end()) {
    Dequeued(seq);
    waiting_.erase(w);
  }
  auto r = std::find_if(running_.begin(), running_.end(),
                        [&](const Running& run) { return run.seq == &seq && !run.done; });
  if (r != running_.end()) {
    Park(*r);
    if (step_in_flight_) {
      // The step in flight may have scheduled it: FinishStep skips and drops the entry.
      r->done = true;
      ++aborted_running_;
    } else {
      running_.erase(r);
    }
  }
  Finish(seq, FinishReason::kAbort, now);
  // Keep the sequence alive until FinishStep, which may still look at its entry.
  if (step_in_flight_) aborted_in_step_.push_back(std::move(it->second));
  sequences_.erase(it);
}

std::vector<std::string> Engine::WaitingAdapters() const {
  std::vector<std::string> names;
  for (const Sequence* seq : waiting_) {
    const std::string& name = seq->request.adapter;
    if (!name.empty() && std::find(names.begin(), names.end(), name) == names.end()) {
      names.push_back(name);
    }
  }
  return names;
}

bool Engine::AllocateFor(Sequence& seq, int64_t new_tokens) {
  const int64_t bs = pool_.block_size();
  const int64_t needed = (seq.num_computed + new_tokens + bs - 1) / bs;
  const int64_t missing = needed - static_cast<int64_t>(seq.blocks.size());
  if (missing <= 0) return true;
  if (pool_.num_free_blocks() < missing) return false;
  for (int64_t i = 0; i < missing; ++i) seq.blocks.push_back(pool_.Allocate());
  return true;
}

void Engine::ReleaseBlocks(Sequence& seq) {
  // Tail blocks first, so the free list evicts a sequence's last blocks before its prefix.
  for (auto it = seq.blocks.rbegin(); it != seq.blocks.rend(); ++it) pool_.Release(*it);
  seq.blocks.clear();
  seq.registered_blocks = 0;
  SetComputed(seq, 0);
}

void Engine::Enqueued(Sequence& seq) {
  seq.queued_tokens = static_cast<int64_t>(seq.tokens.size());
  seq.queued_uncached = seq.queued_tokens;
  if (config_.estimate_queued_prefill) {
    const int64_t bs = pool_.block_size();
    ExtendBlockHashes(seq.hash_seed, seq.tokens, static_cast<int>(bs), seq.block_hashes);
    const auto max_blocks = static_cast<std::size_t>((seq.queued_tokens - 1) / bs);
    seq.queued_uncached -=
        static_cast<int64_t>(CountCachedPrefixBlocks(pool_, seq.block_hashes, max_blocks)) * bs;
  }
  queued_tokens_ += seq.queued_tokens;
  queued_uncached_ += seq.queued_uncached;
}

void Engine::Dequeued(Sequence& seq) {
  queued_tokens_ -= std::exchange(seq.queued_tokens, 0);
  queued_uncached_ -= std::exchange(seq.queued_uncached, 0);
}

void Engine::SetComputed(Sequence& seq, int64_t computed) {
  live_computed_ += computed - seq.num_computed;
  seq.num_computed = computed;
}

Engine::Running Engine::StartRunning(Sequence& seq) const {
  Running run;
  run.seq = &seq;
  run.id = seq.id;
  run.tag = seq.request.tag;
  run.sample_seed = seq.request.seed;
  run.last_token_time = seq.last_token_time;
  run.token_tail = seq.tokens.data() + seq.tokens.size();
  run.num_computed = static_cast<int32_t>(seq.num_computed);
  run.len = static_cast<int32_t>(seq.prompt_len + seq.output_len);
  run.output_len = static_cast<int32_t>(seq.output_len);
  run.max_output = seq.request.max_output_tokens;
  run.cached_tokens = static_cast<int32_t>(seq.cached_tokens);
  run.num_blocks = static_cast<int32_t>(seq.blocks.size());
  run.registered_blocks = static_cast<int32_t>(seq.registered_blocks);
  run.limit_is_eos = seq.request.limit_is_eos;
  run.needs_text = !seq.request.stop.empty();
  return run;
}

void Engine::Park(const Running& run) {
  Sequence& seq = *run.seq;
  seq.num_computed = run.num_computed;
  seq.output_len = run.output_len;
  seq.last_token_time = run.last_token_time;
  seq.registered_blocks = static_cast<std::size_t>(run.registered_blocks);
}

void Engine::MaterializeOutput(Sequence& seq, uint64_t request_seed, int64_t output_len) {
  const auto& vocabulary = tokenizer::PseudoWordVocabulary::Get();
  for (int64_t k = static_cast<int64_t>(seq.tokens.size()) - seq.prompt_len; k < output_len; ++k) {
    seq.tokens.push_back(vocabulary.id(SampleIndex(request_seed, k)));
  }
}

void Engine::Preempt(Running& run) {
  Park(run);
  Sequence& seq = *run.seq;
  MaterializeOutput(seq, seq.request.seed,
                    seq.output_len);  // recomputed from the start, output included
  ReleaseBlocks(seq);
  if (seq.holds_lora) {
    lora_slots_.Release(seq.request.adapter);
    seq.holds_lora = false;
  }
  Enqueued(seq);
  waiting_.push_front(&seq);
  ++stats_.preemptions;
}

bool Engine::Admit(Sequence& seq, int64_t budget, int64_t& scheduled_tokens) {
  const int64_t bs = pool_.block_size();
  const int64_t len = static_cast<int64_t>(seq.tokens.size());
  // At least one token must be computed to produce the next token.
  const std::size_t max_cached_blocks = static_cast<std::size_t>((len - 1) / bs);
  ExtendBlockHashes(seq.hash_seed, seq.tokens, static_cast<int>(bs), seq.block_hashes);
  // The cached leading blocks, looked up once (a fleet of engines makes every lookup a miss).
  cached_scratch_.clear();
  const std::size_t limit = std::min(max_cached_blocks, seq.block_hashes.size());
  constexpr std::size_t kAhead = 16;  // lookups in flight at once
  for (std::size_t i = 0; i < std::min(limit, kAhead); ++i) {
    pool_.PrefetchCached(seq.block_hashes[i]);
  }
  for (std::size_t i = 0; i < limit; ++i) {
    if (i + kAhead < limit) pool_.PrefetchCached(seq.block_hashes[i + kAhead]);
    const BlockId block = pool_.FindCached(seq.block_hashes[i]);
    if (block == kNoBlock) break;
    cached_scratch_.push_back(block);
  }
  const std::size_t cached_blocks = cached_scratch_.size();
  const int64_t cached_tokens = static_cast<int64_t>(cached_blocks) * bs;
  const int64_t new_tokens = std::min(len - cached_tokens, budget);
  int64_t free_needed = (cached_tokens + new_tokens + bs - 1) / bs - cached_blocks;
  for (const BlockId block : cached_scratch_) {
    if (pool_.refcount(block) == 0) ++free_needed;
  }
  if (pool_.num_free_blocks() < free_needed) return false;
  for (const BlockId block : cached_scratch_) {
    pool_.Acquire(block);
    seq.blocks.push_back(block);
  }
  seq.registered_blocks = cached_blocks;
  SetComputed(seq, cached_tokens);
  const bool allocated = AllocateFor(seq, new_tokens);
  (void)allocated;  // guaranteed by the free-block check above
  if (!seq.ever_scheduled) {
    seq.ever_scheduled = true;
    seq.cached_tokens = cached_tokens;
    stats_.prefix_cache_queries += static_cast<uint64_t>(seq.prompt_len);
    stats_.prefix_cache_hits += static_cast<uint64_t>(cached_tokens);
  }
  scheduled_tokens = new_tokens;
  return true;
}

double Engine::BeginStep(double now) {
  num_scheduled_ = 0;
  int64_t budget = config_.profile.max_num_batched_tokens;
  int64_t step_tokens = 0;
  int64_t step_context = 0;
  double lora_load_ms = 0;
  bool preempted = false;
  const int64_t bs = pool_.block_size();

  // 1. Running sequences: the next prefill chunk or one decode token each. The scheduled ones
  // stay the leading entries of running_: a preemption takes the newest, which is not scheduled
  // yet (or is the one being scheduled, which ends this phase).
  for (std::size_t i = 0; i < running_.size() && budget > 0;) {
    Running& run = running_[i];
    const int64_t n = std::min<int64_t>(run.len - run.num_computed, budget);
    const int64_t needed = (run.num_computed + n + bs - 1) / bs;
    bool self_preempted = false;
    if (needed > run.num_blocks) {
      Sequence& seq = *run.seq;
      seq.num_computed = run.num_computed;  // AllocateFor reads the sequence's copy
      while (!AllocateFor(seq, n)) {
        const bool self = &running_.back() == &run;
        Preempt(running_.back());
        running_.pop_back();
        preempted = true;
        if (self) {
          self_preempted = true;
          break;
        }
      }
      if (self_preempted) break;
      run.num_blocks = static_cast<int32_t>(seq.blocks.size());
    }
    run.step_tokens = static_cast<int32_t>(n);
    ++num_scheduled_;
    budget -= n;
    step_tokens += n;
    step_context += run.num_computed + n;
    ++i;
  }

  // 2. Waiting sequences, first come first served, unless this step had to preempt.
  if (!preempted) {
    skipped_scratch_.clear();  // waiting for a LoRA slot; keep their order
    while (!waiting_.empty() && budget > 0 &&
           static_cast<int64_t>(running_.size()) < config_.profile.max_num_seqs) {
      Sequence* seq = waiting_.front();
      const std::string& adapter = seq->request.adapter;
      if (!adapter.empty() && !lora_slots_.CanAcquire(adapter)) {
        skipped_scratch_.push_back(seq);
        waiting_.pop_front();
        continue;
      }
      int64_t n = 0;
      const bool first_admission = !seq->ever_scheduled;
      if (!Admit(*seq, budget, n)) break;  // KV cache full: new work waits
      if (!adapter.empty()) {
        if (lora_slots_.Acquire(adapter).value_or(false)) {
          lora_load_ms += config_.profile.lora_load_ms;
          ++stats_.lora_loads;
        }
        seq->holds_lora = true;
      }
      waiting_.pop_front();
      Dequeued(*seq);
      if (first_admission) stats_.request_queue_time.Observe(now - seq->arrival);
      Running& run = running_.emplace_back(StartRunning(*seq));
      run.step_tokens = static_cast<int32_t>(n);
      ++num_scheduled_;
      budget -= n;
      step_tokens += n;
      step_context += run.num_computed + n;
    }
    for (auto it = skipped_scratch_.rbegin(); it != skipped_scratch_.rend(); ++it) {
      waiting_.push_front(*it);
    }
  }

  last_step_tokens_ = step_tokens;
  last_step_context_ = step_context;
  if (num_scheduled_ == 0) return 0.0;
  step_in_flight_ = true;
  ++stats_.steps;
  return (config_.profile.StepMs(step_tokens, step_context) + lora_load_ms) / 1000.0;
}

void Engine::RegisterFullBlocks(Running& run) {
  Sequence& seq = *run.seq;
  MaterializeOutput(seq, run.sample_seed, run.output_len);
  run.token_tail = seq.tokens.data() + seq.tokens.size();
  const std::size_t bs = static_cast<std::size_t>(pool_.block_size());
  ExtendBlockHashes(seq.hash_seed, seq.tokens, static_cast<int>(bs), seq.block_hashes);
  const std::size_t full = std::min(static_cast<std::size_t>(run.num_computed) / bs,
                                    std::min(seq.blocks.size(), seq.block_hashes.size()));
  auto registered = static_cast<std::size_t>(run.registered_blocks);
  for (; registered < full; ++registered) {
    pool_.RegisterCached(seq.blocks[registered], seq.block_hashes[registered]);
  }
  run.registered_blocks = static_cast<int32_t>(registered);
}

void Engine::PrefetchState() const {
  const auto range = [](const void* first, const void* last) {
    for (auto p = reinterpret_cast<uintptr_t>(first) & ~uintptr_t{63};
         p <= reinterpret_cast<uintptr_t>(last); p += 64) {
      __builtin_prefetch(reinterpret_cast<const void*>(p));
    }
  };
  range(&config_.profile.weights_ms, &config_.profile.lora_load_ms);
  __builtin_prefetch(&config_.emit_text);
  range(&pool_, reinterpret_cast<const char*>(&pool_) + sizeof(pool_) - 1);
  range(&running_, &queued_uncached_);
  range(&stats_, &stats_.lora_loads);
  stats_.inter_token_latency.Prefetch();
}

void Engine::PrefetchBatch() const {
  pool_.PrefetchNextFree();
  const char* batch = reinterpret_cast<const char*>(running_.data());
  const std::size_t bytes = running_.size() * sizeof(Running);
  for (std::size_t off = 0; off < bytes; off += 64) __builtin_prefetch(batch + off, 1);
}

const std::vector<TokenEvent>& Engine::FinishStep(double now) {
  events_.clear();
  step_in_flight_ = false;
  const auto& vocabulary = tokenizer::PseudoWordVocabulary::Get();
  const int64_t bs = pool_.block_size();
  bool any_done = aborted_running_ > 0;
  // The few sequences this step needs beyond their entry (a block to hash and register, a first
  // or last token): start all their misses before the first, then those of the arrays a full
  // block reads (which need the sequence first).
  touched_scratch_.clear();
  for (std::size_t k = 0; k < num_scheduled_; ++k) {
    const Running& run = running_[k];
    const int32_t computed = run.num_computed + run.step_tokens;
    const bool block_full = computed / bs > run.registered_blocks;
    const bool edge =
        computed >= run.len && (run.output_len == 0 || run.output_len + 1 >= run.max_output);
    if (!block_full && !edge) continue;
    __builtin_prefetch(run.seq);
    if (!block_full) continue;
    __builtin_prefetch(run.token_tail, 1);
    touched_scratch_.push_back(&run);
  }
  for (const Running* run : touched_scratch_) {
    const Sequence& seq = *run->seq;
    if (!seq.block_hashes.empty()) __builtin_prefetch(&seq.block_hashes.back());
    if (run->registered_blocks < run->num_blocks) {
      __builtin_prefetch(&seq.blocks[static_cast<std::size_t>(run->registered_blocks)]);
    }
  }
  for (std::size_t k = 0; k < num_scheduled_; ++k) {
    Running& run = running_[k];
    if (run.done) continue;  // aborted during the step
    run.num_computed += run.step_tokens;
    live_computed_ += run.step_tokens;
    // A block became full: hash and register it (the only time a decode step needs the
    // Sequence itself, apart from its first and last token).
    if (run.num_computed / bs > run.registered_blocks) RegisterFullBlocks(run);
    if (run.num_computed < run.len) continue;  // prefill chunk

    // The step computed every known token: sample the next one.
    ++live_tokens_;
    ++run.len;
    ++run.output_len;
    ++stats_.generation_tokens;
    if (run.output_len == 1) {
      stats_.time_to_first_token.Observe(now - run.seq->arrival);
      stats_.prompt_tokens += static_cast<uint64_t>(run.len - 1);
    } else {
      stats_.inter_token_latency.Observe(now - run.last_token_time);
    }
    run.last_token_time = now;

    std::string_view text;
    FinishReason finish = FinishReason::kNone;
    if (config_.emit_text || run.needs_text) {
      text = vocabulary.word(SampleIndex(run.sample_seed, run.output_len - 1));
    }
    if (run.needs_text) {
      Sequence& seq = *run.seq;
      const std::size_t before = seq.output_text.size();
      seq.output_text.append(text);
      for (const std::string& stop : seq.request.stop) {
        if (stop.empty()) continue;
        const std::size_t from = before >= stop.size() ? before - stop.size() + 1 : 0;
        const std::size_t at = seq.output_text.find(stop, from);
        if (at != std::string::npos) {
          finish = FinishReason::kStop;
          text = text.substr(0, at > before ? at - before : 0);
          break;
        }
      }
    }
    if (finish == FinishReason::kNone && run.output_len >= run.max_output) {
      finish = run.limit_is_eos ? FinishReason::kStop : FinishReason::kLength;
    }
    events_.push_back(TokenEvent{run.id, text, finish, run.len - run.output_len, run.output_len,
                                 run.cached_tokens, run.tag});
    if (finish != FinishReason::kNone) {
      Park(run);
      Finish(*run.seq, finish, now);
      run.done = true;
      any_done = true;
    }
  }
  num_scheduled_ = 0;
  // Drop finished and aborted sequences from the running list and the table.
  if (any_done) std::erase_if(running_, [](const Running& run) { return run.done; });
  aborted_running_ = 0;
  for (const TokenEvent& event : events_) {
    if (event.finish != FinishReason::kNone) sequences_.erase(event.request_id);
  }
  aborted_in_step_.clear();
  return events_;
}

void Engine::Finish(Sequence& seq, FinishReason reason, double now) {
  ReleaseBlocks(seq);
  live_tokens_ -= seq.prompt_len + seq.output_len;
  if (seq.holds_lora) {
    lora_slots_.Release(seq.request.adapter);
    seq.holds_lora = false;
  }
  switch (reason) {
    case FinishReason::kStop:
      ++stats_.success_stop;
      break;
    case FinishReason::kLength:
      ++stats_.success_length;
      break;
    case FinishReason::kAbort:
      ++stats_.success_abort;
      return;  // aborted requests are not observed in the latency histograms
    case FinishReason::kNone:
      break;
  }
  stats_.e2e_request_latency.Observe(now - seq.arrival);
}

}  // namespace tokenway::sim
