// Server-sent-events framing for the streaming relay.
//
// SseEventSplitter accumulates the decoded body of an upstream event stream and hands out whole
// events (each ending with its blank line) so they can be inspected and relayed one by one, the
// bytes unchanged. Incomplete trailing bytes stay buffered until the rest arrives.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tokenway {

class SseEventSplitter {
 public:
  // The buffer decoded body bytes can be appended to directly (instead of Append()).
  std::string* mutable_buffer() { return &buf_; }

  // Adds decoded body bytes.
  void Append(std::string_view bytes) { buf_.append(bytes); }

  // Sets `event` to the next complete event including its terminating blank line and returns
  // true; returns false when no complete event is buffered. Views stay valid until the next
  // Append() or Compact().
  bool Next(std::string_view& event);

  // Drops the events already handed out.
  void Compact();

  // Bytes received but not yet part of a complete event.
  std::string_view pending() const { return std::string_view(buf_).substr(pos_); }
  size_t buffered() const { return buf_.size() - pos_; }
  void Clear() {
    buf_.clear();
    pos_ = scan_ = 0;
  }

 private:
  std::string buf_;
  size_t pos_ = 0;   // start of the first event not yet handed out
  size_t scan_ = 0;  // where the search for the next boundary resumes
};

// The payload of an event's "data:" lines (joined with "\n" when there are several, as the SSE
// specification says); empty when the event has no data line. `scratch` holds the joined text
// when it must be built.
std::string_view SseEventData(std::string_view event, std::string& scratch);

}  // namespace tokenway
