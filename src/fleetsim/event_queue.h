// EventQueue: the clock and agenda of the fleet simulator — a binary min-heap of events keyed by
// (virtual time, sequence number). Equal times pop in the order they were pushed, so a run is a
// pure function of its inputs and seed. O(log n) per push and pop; no allocation once the heap
// has grown to the run's peak size. Single-threaded; owned by one FleetSimulator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tokenway::fleetsim {

struct Event {
  int64_t time_ns = 0;  // virtual nanoseconds from the start of the run
  uint64_t seq = 0;     // push order: breaks ties between equal times
  uint32_t kind = 0;    // what happens (the simulator's enum)
  uint32_t target = 0;  // the engine, gateway replica, ... it happens to
  uint64_t data = 0;    // e.g. the request index
};

class EventQueue {
 public:
  // Schedules an event; a time before now() is treated as now (nothing happens in the past).
  void Push(int64_t time_ns, uint32_t kind, uint32_t target, uint64_t data);
  // Removes and returns the earliest event and advances now() to its time. Not on an empty queue.
  Event Pop();
  // The event Pop would return next. Not on an empty queue.
  const Event& top() const { return heap_.front(); }
  // The event that follows top() unless a push comes between, or null (fewer than two events).
  const Event* second() const;
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  int64_t now() const { return now_; }
  uint64_t pushed() const { return next_seq_; }

 private:
  std::vector<Event> heap_;
  uint64_t next_seq_ = 0;
  int64_t now_ = 0;
};

}  // namespace tokenway::fleetsim
