#include "fleetsim/event_queue.h"

#include <algorithm>

namespace tokenway::fleetsim {
namespace {

// std::*_heap build a max-heap: "a after b" puts the earliest event on top.
bool Later(const Event& a, const Event& b) {
  return a.time_ns != b.time_ns ? a.time_ns > b.time_ns : a.seq > b.seq;
}

}  // namespace

void EventQueue::Push(int64_t time_ns, uint32_t kind, uint32_t target, uint64_t data) {
  heap_.push_back(Event{std::max(time_ns, now_), next_seq_++, kind, target, data});
  std::push_heap(heap_.begin(), heap_.end(), Later);
}

Event EventQueue::Pop() {
  std::pop_heap(heap_.begin(), heap_.end(), Later);
  Event e = heap_.back();
  heap_.pop_back();
  now_ = e.time_ns;
  return e;
}

const Event* EventQueue::second() const {
  // The root's children hold the two candidates.
  if (heap_.size() < 2) return nullptr;
  if (heap_.size() == 2) return &heap_[1];
  return Later(heap_[1], heap_[2]) ? &heap_[2] : &heap_[1];
}

}  // namespace tokenway::fleetsim
