// ext_proc_guardrail: a guardrail service speaking Envoy's ext_proc, for the integration tests of
// the `ext_proc` payload processor behind the real gateway.
//
//   ext_proc_guardrail [--port N] [--deny-word W] [--max-tokens N] [--hang]
//
// A request body containing W is refused (immediate_response 403 with an OpenAI-shaped JSON error
// whose code is "guardrail_denied"); any other body has its "max_tokens" value replaced by N
// (a body mutation) when N is given, else passes. --hang answers nothing. Prints the port it
// listens on ("port N") on stdout, then serves until killed.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <regex>
#include <string>
#include <thread>

#include "support/guardrail_ext_proc.h"

using tokenway::testing::GuardrailDecision;
using tokenway::testing::GuardrailExtProc;

int main(int argc, char** argv) {
  // Blocked before gRPC starts its threads, so only sigwait() below sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  int port = 0;
  std::string deny_word;
  int max_tokens = -1;
  bool hang = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--port") {
      port = std::stoi(value());
    } else if (a == "--deny-word") {
      deny_word = value();
    } else if (a == "--max-tokens") {
      max_tokens = std::stoi(value());
    } else if (a == "--hang") {
      hang = true;
    } else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  const std::regex max_tokens_field(R"re("max_tokens"\s*:\s*[0-9]+)re");
  GuardrailExtProc service([&](const std::string& body) {
    GuardrailDecision d;
    if (hang) {
      d.kind = GuardrailDecision::Kind::kHang;
      return d;
    }
    if (body.empty()) return d;  // the headers: continue to the body
    if (!deny_word.empty() && body.find(deny_word) != std::string::npos) {
      d.kind = GuardrailDecision::Kind::kDeny;
      d.status = 403;
      d.body = R"({"error":{"message":"the guardrail refused the prompt","type":)"
               R"("invalid_request_error","param":null,"code":"guardrail_denied"}})";
      return d;
    }
    if (max_tokens >= 0 && std::regex_search(body, max_tokens_field)) {
      d.kind = GuardrailDecision::Kind::kMutate;
      d.body = std::regex_replace(body, max_tokens_field,
                                  "\"max_tokens\":" + std::to_string(max_tokens));
    }
    return d;
  });
  const int bound = service.Start(port);
  if (bound <= 0) {
    std::cerr << "cannot listen on port " << port << "\n";
    return 1;
  }
  std::cout << "port " << bound << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  service.Stop();
  return 0;
}
