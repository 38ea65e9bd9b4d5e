// DeadlineSweep: timeouts for a worker's sockets from one periodic sweep.
//
// Arming a per-operation timer costs more than the small requests it guards, so each socket gets
// a Deadline slot instead: arming it is a store of a time stamp. The worker's sweep timer walks
// the registered slots every few tens of milliseconds and closes the socket of every slot whose
// deadline has passed; the pending operation then fails and its owner sees `expired()`. All on
// the worker thread; no locking.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <vector>

namespace tokenway {

class DeadlineSweep;

class Deadline {
 public:
  Deadline() = default;
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  ~Deadline();

  // Registers the slot with `sweep` for `socket`. The socket must outlive the registration.
  void Attach(DeadlineSweep* sweep, boost::asio::ip::tcp::socket* socket);
  void Detach();

  void Arm(int64_t deadline_ns) {
    deadline_ns_ = deadline_ns;
    expired_ = false;
  }
  void Disarm() { deadline_ns_ = 0; }
  bool expired() const { return expired_; }
  int64_t deadline() const { return deadline_ns_; }

 private:
  friend class DeadlineSweep;
  DeadlineSweep* sweep_ = nullptr;
  boost::asio::ip::tcp::socket* socket_ = nullptr;
  int64_t deadline_ns_ = 0;
  bool expired_ = false;
  size_t index_ = 0;
};

class DeadlineSweep {
 public:
  // Expires every slot whose deadline is at or before `now_ns`: marks it and closes its socket.
  void Sweep(int64_t now_ns) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      Deadline* d = slots_[i];
      if (d->deadline_ns_ != 0 && d->deadline_ns_ <= now_ns) {
        d->deadline_ns_ = 0;
        d->expired_ = true;
        boost::system::error_code ec;
        d->socket_->cancel(ec);
        d->socket_->close(ec);
      }
    }
  }
  size_t size() const { return slots_.size(); }

 private:
  friend class Deadline;
  void Add(Deadline* d) {
    d->index_ = slots_.size();
    slots_.push_back(d);
  }
  void Remove(Deadline* d) {
    size_t i = d->index_;
    slots_[i] = slots_.back();
    slots_[i]->index_ = i;
    slots_.pop_back();
  }
  std::vector<Deadline*> slots_;
};

inline Deadline::~Deadline() {
  Detach();
}

inline void Deadline::Attach(DeadlineSweep* sweep, boost::asio::ip::tcp::socket* socket) {
  Detach();
  sweep_ = sweep;
  socket_ = socket;
  sweep_->Add(this);
}

inline void Deadline::Detach() {
  if (sweep_) {
    sweep_->Remove(this);
    sweep_ = nullptr;
  }
}

}  // namespace tokenway
