// FlowController: saturation, shedding, strict priority, fairness between flows, queue limits,
// TTL settlement and the one-at-a-time release chain, over fake endpoints.
#include "routing/flow_controller.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "routing/endpoint_state.h"

namespace tokenway {
namespace {

constexpr int64_t kNow = 1'000'000'000'000;

// Records the order in which waiters are woken.
struct Recorder {
  std::vector<int> woken;
};

class TestWaiter final : public FlowWaiter {
 public:
  TestWaiter(Recorder& r, int id) : recorder(r), id(id) {}
  void Wake() override { recorder.woken.push_back(id); }
  Recorder& recorder;
  int id;
};

class FlowControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      states_.push_back(std::make_unique<EndpointState>("http://e" + std::to_string(i)));
      raw_.push_back(states_.back().get());
    }
    settings_.use_engine_signals = false;
    settings_.max_in_flight = 1;
    settings_.max_queue = 3;
  }
  FlowView view() { return {&settings_, raw_}; }
  void Fill() {  // every endpoint at its in-flight limit: saturated
    for (auto* s : raw_) s->in_flight.store(1);
  }
  void FreeOne() { raw_[0]->in_flight.store(0); }
  std::shared_ptr<TestWaiter> W(int id) { return std::make_shared<TestWaiter>(rec_, id); }
  // Simulates the released request picking endpoint 0 and calling DispatchDone.
  void Dispatch() {
    raw_[0]->in_flight.fetch_add(1);
    fc_.DispatchDone(view(), kNow);
  }

  std::vector<std::unique_ptr<EndpointState>> states_;
  std::vector<EndpointState*> raw_;
  FlowControlConfig settings_;
  FlowController fc_{"pool"};
  Recorder rec_;
};

TEST_F(FlowControllerTest, DispatchesDirectlyWhileThereIsRoom) {
  auto w = W(1);
  EXPECT_EQ(fc_.Admit(view(), 0, 0, w, kNow), FlowController::Admission::kDispatch);
  EXPECT_EQ(fc_.Admit(view(), -1, 0, w, kNow), FlowController::Admission::kDispatch);
  EXPECT_EQ(fc_.counters().dispatched_direct.load(), 2u);
  EXPECT_TRUE(rec_.woken.empty());
}

TEST_F(FlowControllerTest, ShedsSheddableAndQueuesOthersWhenSaturated) {
  Fill();
  EXPECT_FALSE(FlowController::HasRoom(view(), kNow));
  EXPECT_EQ(fc_.Admit(view(), -1, 0, W(1), kNow), FlowController::Admission::kShed);
  EXPECT_EQ(fc_.Admit(view(), 0, 0, W(2), kNow), FlowController::Admission::kQueued);
  EXPECT_EQ(fc_.waiting(), 1u);
  EXPECT_EQ(fc_.counters().shed.load(), 1u);
  EXPECT_TRUE(rec_.woken.empty());
}

TEST_F(FlowControllerTest, SheddableNeverWaitsBehindOthers) {
  Fill();
  auto a = W(1);
  fc_.Admit(view(), 0, 0, a, kNow);
  FreeOne();  // room, but a waits for it
  EXPECT_EQ(fc_.Admit(view(), -1, 0, W(2), kNow), FlowController::Admission::kShed);
  fc_.Kick(view(), kNow);
  EXPECT_EQ(fc_.Settle(*a, kNow), FlowController::Settlement::kReleased);
  raw_[0]->in_flight.fetch_add(1);
  fc_.DispatchDone(view(), kNow);
  raw_[0]->in_flight.store(0);
  // Nothing waits and there is room: the sheddable request goes.
  EXPECT_EQ(fc_.Admit(view(), -1, 0, W(3), kNow), FlowController::Admission::kDispatch);
}

TEST_F(FlowControllerTest, StrictPriorityBetweenBands) {
  Fill();
  std::vector<std::shared_ptr<TestWaiter>> ws;
  int prio[] = {0, 1, 0, 7, 1};
  for (int i = 0; i < 5; ++i) {
    ws.push_back(W(i));
    ASSERT_EQ(fc_.Admit(view(), prio[i], 0, ws.back(), kNow), FlowController::Admission::kQueued);
  }
  FreeOne();
  fc_.Kick(view(), kNow);
  // One at a time: the next is released only after DispatchDone.
  ASSERT_EQ(rec_.woken, std::vector<int>({3}));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(fc_.Settle(*ws[rec_.woken.back()], kNow), FlowController::Settlement::kReleased);
    Dispatch();                   // takes the free slot: saturated again
    raw_[0]->in_flight.store(0);  // it completes
    fc_.Kick(view(), kNow);
  }
  EXPECT_EQ(rec_.woken, std::vector<int>({3, 1, 4, 0, 2}));
}

TEST_F(FlowControllerTest, FlowsTakeTurnsWithinABand) {
  settings_.max_queue = 100;
  Fill();
  std::vector<std::shared_ptr<TestWaiter>> ws;
  // Flow 1 queues five requests before flow 2 and flow 3 queue one each.
  for (int i = 0; i < 5; ++i) {
    ws.push_back(W(10 + i));
    fc_.Admit(view(), 0, 1, ws.back(), kNow);
  }
  ws.push_back(W(20));
  fc_.Admit(view(), 0, 2, ws.back(), kNow);
  ws.push_back(W(30));
  fc_.Admit(view(), 0, 3, ws.back(), kNow);
  FreeOne();
  fc_.Kick(view(), kNow);
  for (size_t i = 1; i < ws.size(); ++i) {
    Dispatch();                   // the released request takes the slot
    raw_[0]->in_flight.store(0);  // and completes
    fc_.Kick(view(), kNow);
  }
  EXPECT_EQ(rec_.woken, std::vector<int>({10, 20, 30, 11, 12, 13, 14}));
}

TEST_F(FlowControllerTest, FullBandIsRefusedOthersStillQueue) {
  Fill();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(fc_.Admit(view(), 0, 0, W(i), kNow), FlowController::Admission::kQueued);
  }
  EXPECT_EQ(fc_.Admit(view(), 0, 0, W(9), kNow), FlowController::Admission::kQueueFull);
  EXPECT_EQ(fc_.Admit(view(), 2, 0, W(10), kNow), FlowController::Admission::kQueued);
  EXPECT_EQ(fc_.counters().queue_full.load(), 1u);
  auto depths = fc_.Depths();
  ASSERT_EQ(depths.size(), 2u);
  EXPECT_EQ(depths[0].priority, 2);
  EXPECT_EQ(depths[1].waiting, 3u);
}

TEST_F(FlowControllerTest, SettleRemovesAQueuedWaiterAndRecordsQueueTime) {
  Fill();
  auto a = W(1), b = W(2);
  fc_.Admit(view(), 0, 5, a, kNow);
  fc_.Admit(view(), 0, 5, b, kNow);
  EXPECT_EQ(fc_.Settle(*a, kNow + 300'000'000), FlowController::Settlement::kRemoved);
  EXPECT_EQ(fc_.waiting(), 1u);
  EXPECT_EQ(fc_.counters().expired.load(), 1u);
  EXPECT_EQ(fc_.counters().queue_time_count.load(), 1u);
  EXPECT_EQ(fc_.counters().queue_time_sum_us.load(), 300'000u);
  FreeOne();
  fc_.Kick(view(), kNow);
  EXPECT_EQ(rec_.woken, std::vector<int>({2}));  // the removed one is never woken
  EXPECT_EQ(fc_.Settle(*b, kNow), FlowController::Settlement::kReleased);
}

TEST_F(FlowControllerTest, ReleaseRacingTheTtlStillDispatches) {
  Fill();
  auto a = W(1);
  fc_.Admit(view(), 0, 0, a, kNow);
  FreeOne();
  fc_.Kick(view(), kNow);  // released ...
  ASSERT_EQ(rec_.woken.size(), 1u);
  // ... while its TTL fired: Settle reports the release so the request is not lost.
  EXPECT_EQ(fc_.Settle(*a, kNow + 1), FlowController::Settlement::kReleased);
  EXPECT_EQ(fc_.counters().expired.load(), 0u);
}

TEST_F(FlowControllerTest, NewArrivalsQueueBehindWaitersEvenWithRoom) {
  Fill();
  auto a = W(1), b = W(2);
  fc_.Admit(view(), 0, 0, a, kNow);
  FreeOne();
  // Room appeared but a is still waiting: b must not overtake it.
  EXPECT_EQ(fc_.Admit(view(), 0, 0, b, kNow), FlowController::Admission::kQueued);
  EXPECT_EQ(rec_.woken, std::vector<int>({1}));
}

TEST_F(FlowControllerTest, StalledReleaseDoesNotBlockTheQueueForever) {
  Fill();
  auto a = W(1), b = W(2);
  fc_.Admit(view(), 0, 0, a, kNow);
  fc_.Admit(view(), 0, 0, b, kNow);
  FreeOne();
  fc_.Kick(view(), kNow);
  ASSERT_EQ(rec_.woken, std::vector<int>({1}));
  fc_.Kick(view(), kNow + 10'000'000);  // a has not called DispatchDone: b waits
  EXPECT_EQ(rec_.woken.size(), 1u);
  fc_.Kick(view(), kNow + 200'000'000);  // a vanished: after the grace period b goes
  EXPECT_EQ(rec_.woken, std::vector<int>({1, 2}));
}

TEST_F(FlowControllerTest, NoEligibleEndpointFailsFastInsteadOfQueueing) {
  Fill();
  for (auto* s : raw_) s->healthy.store(false);
  EXPECT_EQ(fc_.Admit(view(), 0, 0, W(1), kNow), FlowController::Admission::kDispatch);
  EXPECT_EQ(fc_.waiting(), 0u);
}

TEST_F(FlowControllerTest, EngineSignalsDecideRoom) {
  settings_.use_engine_signals = true;
  settings_.max_in_flight = 0;
  settings_.queue_threshold = 3;
  settings_.kv_threshold = 0.8;
  settings_.stale_after_ns = 1'000'000'000;
  for (auto* s : raw_) {
    s->engine.valid.store(true);
    s->engine.updated_at_ns.store(kNow);
    s->engine.waiting.store(5);
  }
  EXPECT_FALSE(FlowController::HasRoom(view(), kNow));
  raw_[1]->engine.waiting.store(2);
  EXPECT_TRUE(FlowController::HasRoom(view(), kNow));
  raw_[1]->sent_since_scrape.store(1);  // the gateway's own count fills the scrape gap
  EXPECT_FALSE(FlowController::HasRoom(view(), kNow));
  raw_[1]->sent_since_scrape.store(0);
  raw_[1]->engine.kv_utilisation.store(0.9f);
  EXPECT_FALSE(FlowController::HasRoom(view(), kNow));
  raw_[1]->engine.kv_utilisation.store(0.1f);
  EXPECT_FALSE(FlowController::HasRoom(view(), kNow + 2'000'000'000));  // stale = no room
  raw_[1]->healthy.store(false);
  EXPECT_FALSE(FlowController::HasRoom(view(), kNow));
}

TEST_F(FlowControllerTest, ConcurrentAdmitSettleKick) {
  settings_.max_queue = 1'000'000;
  Fill();
  std::atomic<int> released{0};
  struct CountingWaiter final : FlowWaiter {
    explicit CountingWaiter(std::atomic<int>& n) : n(n) {}
    void Wake() override { n.fetch_add(1); }
    std::atomic<int>& n;
  };
  std::atomic<bool> stop{false};
  std::thread toggler([&] {  // room comes and goes
    while (!stop.load()) {
      raw_[0]->in_flight.store(raw_[0]->in_flight.load() ? 0 : 1);
      fc_.Kick(view(), kNow);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        auto w = std::make_shared<CountingWaiter>(released);
        if (fc_.Admit(view(), i % 3, static_cast<uint64_t>(t), w, kNow) ==
            FlowController::Admission::kQueued) {
          if (fc_.Settle(*w, kNow) == FlowController::Settlement::kReleased) {
            fc_.DispatchDone(view(), kNow);
          }
        }
        if (i % 7 == 0) fc_.Kick(view(), kNow);
      }
    });
  }
  for (auto& t : threads) t.join();
  stop.store(true);
  toggler.join();
  EXPECT_EQ(fc_.waiting(), 0u);
  EXPECT_TRUE(fc_.Depths().empty());
}

}  // namespace
}  // namespace tokenway
