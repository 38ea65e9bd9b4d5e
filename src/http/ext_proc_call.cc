#include "http/ext_proc_call.h"

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <mutex>

namespace tokenway {

namespace asio = boost::asio;

asio::awaitable<void> LoopSignal::Wait() {
  if (pending_) {
    pending_ = false;
    co_return;
  }
  waiting_ = true;
  timer_.expires_at(asio::steady_timer::time_point::max());
  boost::system::error_code ec;
  co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  waiting_ = false;
  pending_ = false;
}

void LoopSignal::Notify() {
  if (waiting_) {
    timer_.cancel();
  } else {
    pending_ = true;
  }
}

ExtProcCall::ExtProcCall(asio::io_context& io)
    : io_(io), work_(asio::make_work_guard(io)), read_signal_(io), done_signal_(io) {}

std::shared_ptr<ExtProcCall> ExtProcCall::Start(grpc::GenericStub& stub, asio::io_context& io,
                                                std::chrono::milliseconds timeout) {
  std::shared_ptr<ExtProcCall> call(new ExtProcCall(io));
  call->self_ = call;
  if (timeout.count() > 0) {
    call->context_.set_deadline(std::chrono::system_clock::now() + timeout);
  }
  stub.PrepareBidiStreamingCall(&call->context_, kMethod, grpc::StubOptions(), call.get());
  // Held until no more writes will start (WritesDone or Finish): gRPC then cannot end the
  // stream (and free its state) between a check on this loop and a StartWrite.
  call->AddHold();
  call->StartRead(&call->read_buffer_);
  call->StartCall();
  return call;
}

void ExtProcCall::OnReadDone(bool ok) {
  // The next read starts here, on gRPC's thread, so no read is ever started after OnDone.
  if (!ok) {
    asio::post(io_, [this] {
      reading_closed_ = true;
      read_signal_.Notify();
    });
    return;
  }
  // Queued before the next read starts, so this message is ahead of that read's outcome. Answers
  // that arrive while a hand-over to the loop is pending ride along with it (one wake-up).
  bool hand_over = false;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    inbox_.push_back(std::move(read_buffer_));
    hand_over = !inbox_posted_;
    inbox_posted_ = true;
  }
  read_buffer_.Clear();
  if (hand_over) {
    asio::post(io_, [this] {
      {
        std::lock_guard<std::mutex> lock(inbox_mu_);
        for (auto& m : inbox_) received_.push_back(std::move(m));
        inbox_.clear();
        inbox_posted_ = false;
      }
      read_signal_.Notify();
    });
  }
  StartRead(&read_buffer_);
}

void ExtProcCall::OnWriteDone(bool ok) {
  // Runs the queue on gRPC's thread: the next write starts here, without a trip through the loop.
  std::lock_guard<std::recursive_mutex> lock(write_mu_);
  if (!ok) {
    write_failed_ = true;
    pending_.clear();
    write_in_flight_ = false;
    return;
  }
  if (!pending_.empty()) {
    in_flight_ = std::move(pending_.front());
    pending_.pop_front();
    StartWrite(&in_flight_);
    return;
  }
  write_in_flight_ = false;
  if (writes_done_queued_) {
    write_in_flight_ = true;
    StartWritesDone();
  }
}

void ExtProcCall::OnWritesDoneDone(bool) {
  std::lock_guard<std::recursive_mutex> lock(write_mu_);
  write_in_flight_ = false;
}

void ExtProcCall::OnDone(const grpc::Status& status) {
  // The loop may stop (and its owner destroy it) as soon as this call's work is released, which
  // the posted handler does: holding `done_mu_` until post() has returned keeps the handler (it
  // takes the lock first) from running while post() still touches the loop.
  std::lock_guard<std::mutex> hold(done_mu_);
  asio::post(io_, [this, status] {
    { std::lock_guard<std::mutex> wait_for_post(done_mu_); }
    status_ = status;
    done_ = true;
    reading_closed_ = true;
    read_signal_.Notify();
    done_signal_.Notify();
    work_.reset();
    // Last: may destroy this object when no coroutine holds it any more.
    auto self = std::move(self_);
  });
}

void ExtProcCall::ReleaseHold() {
  if (!holding_) return;
  holding_ = false;
  RemoveHold();
}

bool ExtProcCall::Enqueue(grpc::ByteBuffer buffer) {
  std::lock_guard<std::recursive_mutex> lock(write_mu_);
  if (!holding_ || done_ || writes_done_queued_ || write_failed_) return false;
  if (write_in_flight_) {
    pending_.push_back(std::move(buffer));
    return true;
  }
  write_in_flight_ = true;
  in_flight_ = std::move(buffer);
  StartWrite(&in_flight_);
  return true;
}

asio::awaitable<bool> ExtProcCall::Write(const Request& message) {
  grpc::ByteBuffer buffer;
  bool own = false;
  if (!grpc::SerializationTraits<Request>::Serialize(message, &buffer, &own).ok()) {
    co_return false;
  }
  co_return Enqueue(std::move(buffer));
}

asio::awaitable<bool> ExtProcCall::WriteRaw(const std::string& bytes) {
  grpc::Slice slice(bytes);
  co_return Enqueue(grpc::ByteBuffer(&slice, 1));
}

asio::awaitable<void> ExtProcCall::WritesDone() {
  auto keep = shared_from_this();
  {
    std::lock_guard<std::recursive_mutex> lock(write_mu_);
    if (!holding_ || done_ || writes_done_queued_) co_return;
    writes_done_queued_ = true;
    if (!write_in_flight_ && !write_failed_) {
      write_in_flight_ = true;
      StartWritesDone();
    }
  }
  // Queued writes and the half-close start from OnWriteDone, inside gRPC's reactions.
  ReleaseHold();
}

asio::awaitable<ExtProcCall::ReadResult> ExtProcCall::Read() {
  auto keep = shared_from_this();
  ReadResult result;
  while (received_.empty() && !reading_closed_) co_await read_signal_.Wait();
  if (received_.empty()) co_return result;
  grpc::ByteBuffer buffer = std::move(received_.front());
  received_.pop_front();
  grpc::ProtoBufferReader reader(&buffer);
  if (result.message.ParseFromZeroCopyStream(&reader)) {
    result.outcome = ReadOutcome::kMessage;
  } else {
    result.outcome = ReadOutcome::kMalformed;
    std::vector<grpc::Slice> slices;
    if (buffer.Dump(&slices).ok()) {
      for (const auto& s : slices) {
        result.raw.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
  }
  co_return result;
}

asio::awaitable<grpc::Status> ExtProcCall::Finish() {
  auto keep = shared_from_this();
  ReleaseHold();
  while (!done_) co_await done_signal_.Wait();
  co_return status_;
}

}  // namespace tokenway
