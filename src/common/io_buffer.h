// IoBuffer: a connection's own contiguous read buffer.
//
// Parsers work in place on [data(), data()+size()); the buffer always keeps kPadding spare bytes
// after its readable region so simdjson can parse a body where it lies, without a copy. Bytes are
// consumed from the front; Compact() moves what is left to the start before the next read.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace tokenway {

class IoBuffer {
 public:
  static constexpr size_t kPadding = 64;  // >= SIMDJSON_PADDING

  explicit IoBuffer(size_t initial_capacity = 16 * 1024) { Reserve(initial_capacity); }

  char* data() { return data_.get() + begin_; }
  const char* data() const { return data_.get() + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return end_ == begin_; }
  std::string_view view() const { return {data(), size()}; }

  // Room to read into: at least `min_free` bytes are guaranteed after the call.
  char* write_ptr(size_t min_free = 4096) {
    if (capacity_ - kPadding - end_ < min_free) {
      Compact();
      if (capacity_ - kPadding - end_ < min_free) Reserve(end_ + min_free);
    }
    return data_.get() + end_;
  }
  size_t write_space() const { return capacity_ - kPadding - end_; }
  void commit(size_t n) {
    end_ += n;
    std::memset(data_.get() + end_, 0, kPadding);
  }
  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void clear() { begin_ = end_ = 0; }

  // Makes the readable region start at offset 0 of the allocation.
  void Compact() {
    if (begin_ == 0) return;
    std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }

  // Ensures the readable region can grow to `total` bytes without another allocation.
  void EnsureCapacityFor(size_t total) {
    Compact();
    if (total + kPadding > capacity_) Reserve(total);
  }

  // Gives back memory after an unusually large request.
  void ShrinkTo(size_t capacity) {
    if (capacity_ > capacity + kPadding && size() + kPadding <= capacity) {
      Compact();
      auto fresh = std::make_unique_for_overwrite<char[]>(capacity + kPadding);
      std::memcpy(fresh.get(), data_.get(), end_);
      data_ = std::move(fresh);
      capacity_ = capacity + kPadding;
    }
  }
  size_t capacity() const { return capacity_ - kPadding; }

 private:
  void Reserve(size_t usable) {
    size_t cap = usable + kPadding;
    if (cap <= capacity_) return;
    if (cap < capacity_ * 2) cap = capacity_ * 2;
    auto fresh = std::make_unique_for_overwrite<char[]>(cap);
    if (data_) std::memcpy(fresh.get(), data_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    data_ = std::move(fresh);
    capacity_ = cap;
    std::memset(data_.get() + end_, 0, kPadding);
  }

  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace tokenway
