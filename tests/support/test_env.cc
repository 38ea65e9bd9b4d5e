#include "support/test_env.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace tokenway::testing {

namespace {
constexpr char kPromtool[] = "/usr/bin/promtool";
}

int UnusedLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool HavePromtool() {
  return std::filesystem::exists(kPromtool);
}

int PromtoolCheckMetrics(std::string_view exposition, std::string& output) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("tokenway_exposition_" + std::to_string(::getpid()) + ".prom"))
                         .string();
  std::ofstream(path, std::ios::binary) << exposition;
  std::string cmd = std::string(kPromtool) + " check metrics < " + path + " 2>&1";
  output.clear();
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) output.append(buf, n);
  int status = ::pclose(p);
  std::filesystem::remove(path);
  return status;
}

}  // namespace tokenway::testing
