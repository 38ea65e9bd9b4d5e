// AccessLogSink and AccessLogBuffer: workers hand buffers to the writer thread without ever
// blocking; a stalled output costs counted lines, never a stalled worker; a file gets every line
// whole; buffers handed over before the sink is destroyed are written.
#include "telemetry/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "telemetry/prometheus_text.h"

namespace tokenway {
namespace {

std::string Line(int worker, int n) {
  std::string s = "{\"worker\":" + std::to_string(worker) + ",\"n\":" + std::to_string(n) +
                  ",\"pad\":\"" + std::string(static_cast<size_t>(60 + n % 50), 'x') + "\"}\n";
  return s;
}

// Each worker thread logs `lines` lines the way the gateway does: MaybeFlush after each line,
// a Flush every `flush_every` lines (the periodic tick) and at the end.
void RunWorkers(AccessLogSink* sink, int workers, int lines, int flush_every) {
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([=] {
      AccessLogBuffer buffer;
      for (int n = 0; n < lines; ++n) {
        buffer.line().append(Line(w, n));
        buffer.MaybeFlush(sink);
        if (n % flush_every == flush_every - 1) buffer.Flush(sink);
      }
      buffer.Flush(sink);
    });
  }
  for (auto& t : threads) t.join();
}

std::string TempPath() {
  char path[] = "/tmp/tokenway-access-log-XXXXXX";
  int fd = ::mkstemp(path);
  ::close(fd);
  return path;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

TEST(AccessLogSink, StalledPipeNeverBlocksWorkersAndEveryLineIsWrittenOrCounted) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  constexpr int kWorkers = 4;
  constexpr int kLines = 20'000;  // ~2.3 MB per worker against a 64 KiB pipe nobody reads yet
  AccessLogSinkOptions options;
  options.buffers_per_producer = 2;
  auto sink = AccessLogSink::OnDescriptor(fds[1], options);
  // Returns only because no worker ever waits for the pipe.
  RunWorkers(sink.get(), kWorkers, kLines, 100);
  // Drops happen only when a worker finds its queue full; the writer, stuck on the pipe, drops
  // nothing while it is not shutting down, so this count is final.
  const uint64_t dropped = sink->dropped_lines();
  EXPECT_GT(dropped, 0u);
  PrometheusText text;
  RenderAccessLogMetrics(text, sink.get());
  EXPECT_NE(text.str().find("# TYPE tokenway_access_log_dropped_lines_total counter"),
            std::string::npos);
  EXPECT_NE(text.str().find("tokenway_access_log_dropped_lines_total " + std::to_string(dropped)),
            std::string::npos);

  // Now someone reads: shutting down writes out everything that was handed over.
  std::string got;
  auto drain = [&] {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  };
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) {
      drain();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  sink.reset();
  done.store(true);
  reader.join();
  drain();
  ::close(fds[0]);
  ::close(fds[1]);

  std::set<std::pair<int, int>> seen;
  size_t pos = 0;
  while (pos < got.size()) {
    size_t nl = got.find('\n', pos);
    ASSERT_NE(nl, std::string::npos) << "a line was cut";
    std::string line = got.substr(pos, nl + 1 - pos);
    int w = -1, k = -1;
    ASSERT_EQ(std::sscanf(line.c_str(), "{\"worker\":%d,\"n\":%d,", &w, &k), 2) << line;
    ASSERT_EQ(line, Line(w, k)) << "interleaved or damaged line";
    EXPECT_TRUE(seen.insert({w, k}).second) << "duplicate line";
    pos = nl + 1;
  }
  EXPECT_GT(seen.size(), 0u);
  EXPECT_EQ(seen.size() + dropped, static_cast<size_t>(kWorkers * kLines));
}

TEST(AccessLogSink, ShutdownGivesUpOnAnOutputThatNeverDrains) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  AccessLogSinkOptions options;
  options.buffers_per_producer = 4;
  options.shutdown_timeout = std::chrono::milliseconds(100);
  {
    auto sink = AccessLogSink::OnDescriptor(fds[1], options);
    RunWorkers(sink.get(), 2, 5'000, 100);
    // Returns after shutdown_timeout although the pipe stays full.
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(AccessLogSink, ClosedPipeCountsLinesInsteadOfKillingTheProcess) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);  // writes get EPIPE (SIGPIPE is blocked on the writer thread)
  auto sink = AccessLogSink::OnDescriptor(fds[1]);
  AccessLogBuffer buffer;
  for (int n = 0; n < 10; ++n) buffer.line().append(Line(0, n));
  buffer.Flush(sink.get());
  for (int i = 0; i < 500 && sink->dropped_lines() < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(sink->dropped_lines(), 10u);
  sink.reset();
  ::close(fds[1]);
}

TEST(AccessLogSink, FileGetsEveryLineWholeAndInOrderPerWorker) {
  const std::string path = TempPath();
  constexpr int kWorkers = 4;
  constexpr int kLines = 20'000;
  {
    std::string error;
    AccessLogSinkOptions options;
    options.buffers_per_producer = 4096;  // room for everything: nothing may be dropped
    auto sink = AccessLogSink::Open(path, error, options);
    ASSERT_TRUE(sink) << error;
    RunWorkers(sink.get(), kWorkers, kLines, 100);
    sink.reset();  // writes out what is still queued
  }
  std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kWorkers * kLines));
  std::vector<int> next(kWorkers, 0);
  for (const std::string& l : lines) {
    int w = -1, n = -1;
    ASSERT_EQ(std::sscanf(l.c_str(), "{\"worker\":%d,\"n\":%d,", &w, &n), 2) << l;
    ASSERT_TRUE(w >= 0 && w < kWorkers) << l;
    ASSERT_EQ(l + "\n", Line(w, n)) << "interleaved or damaged line";
    ASSERT_EQ(n, next[w]) << "a worker's lines out of order or missing";
    ++next[w];
  }
  ::unlink(path.c_str());
}

TEST(AccessLogSink, LinesHandedOverJustBeforeShutdownAreWritten) {
  const std::string path = TempPath();
  {
    std::string error;
    auto sink = AccessLogSink::Open(path, error);
    ASSERT_TRUE(sink) << error;
    AccessLogBuffer buffer;
    for (int n = 0; n < 10; ++n) buffer.line().append(Line(0, n));
    buffer.Flush(sink.get());
    EXPECT_TRUE(buffer.line().empty());
  }
  EXPECT_EQ(ReadLines(path).size(), 10u);
  ::unlink(path.c_str());
}

TEST(AccessLogBuffer, WithoutASinkLinesAreDiscarded) {
  AccessLogBuffer buffer;
  buffer.line().append(Line(0, 0));
  buffer.Flush(nullptr);
  EXPECT_TRUE(buffer.line().empty());
}

}  // namespace
}  // namespace tokenway
