// keda_client: plays KEDA against tokenway's external scaler, for the integration tests
// (tests/integration/test_gateway_keda.py). One call per run, the way KEDA's external scaler
// makes it; every response message is printed as one JSON line (protobuf's JSON mapping, fields
// always present), then a last line {"status": "<gRPC code>", "message": "..."}.
//
//   keda_client ADDRESS METHOD [--name N] [--namespace NS] [--meta KEY=VALUE]...
//               [--metric-name NAME] [--count N] [--timeout SECONDS]
//
// METHOD is IsActive, StreamIsActive, GetMetricSpec or GetMetrics. A stream is read until it
// ends, or cancelled after --count messages. Exit status: 0 when the call got an answer (any
// gRPC status), 2 on bad arguments.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "externalscaler/externalscaler.grpc.pb.h"

namespace {

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    default:
      return "OTHER";
  }
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void PrintMessage(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(m, &json, options).ok()) json = "{}";
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
}

void PrintStatus(const grpc::Status& st) {
  std::printf("{\"status\": \"%s\", \"message\": %s}\n", CodeName(st.error_code()),
              JsonString(st.error_message()).c_str());
  std::fflush(stdout);
}

int Usage(const char* why) {
  std::fprintf(stderr,
               "keda_client: %s\nusage: keda_client ADDRESS IsActive|StreamIsActive|"
               "GetMetricSpec|GetMetrics [--name N] [--namespace NS] [--meta KEY=VALUE]... "
               "[--metric-name NAME] [--count N] [--timeout SECONDS]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Usage("ADDRESS and METHOD are required");
  const std::string address = argv[1];
  const std::string method = argv[2];
  externalscaler::ScaledObjectRef ref;
  std::string metric_name;
  long count = 0;
  double timeout = 10;
  for (int i = 3; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) return Usage(("missing value after " + arg).c_str());
    std::string value = argv[++i];
    if (arg == "--name") {
      ref.set_name(value);
    } else if (arg == "--namespace") {
      ref.set_namespace_(value);
    } else if (arg == "--meta") {
      size_t eq = value.find('=');
      if (eq == std::string::npos) return Usage("--meta takes KEY=VALUE");
      (*ref.mutable_scalermetadata())[value.substr(0, eq)] = value.substr(eq + 1);
    } else if (arg == "--metric-name") {
      metric_name = value;
    } else if (arg == "--count") {
      count = std::strtol(value.c_str(), nullptr, 10);
    } else if (arg == "--timeout") {
      timeout = std::strtod(value.c_str(), nullptr);
    } else {
      return Usage(("unknown option " + arg).c_str());
    }
  }
  auto stub = externalscaler::ExternalScaler::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<long>(timeout * 1000)));
  grpc::Status status;
  if (method == "IsActive") {
    externalscaler::IsActiveResponse out;
    status = stub->IsActive(&context, ref, &out);
    if (status.ok()) PrintMessage(out);
  } else if (method == "GetMetricSpec") {
    externalscaler::GetMetricSpecResponse out;
    status = stub->GetMetricSpec(&context, ref, &out);
    if (status.ok()) PrintMessage(out);
  } else if (method == "GetMetrics") {
    externalscaler::GetMetricsRequest request;
    *request.mutable_scaledobjectref() = ref;
    request.set_metricname(metric_name);
    externalscaler::GetMetricsResponse out;
    status = stub->GetMetrics(&context, request, &out);
    if (status.ok()) PrintMessage(out);
  } else if (method == "StreamIsActive") {
    auto reader = stub->StreamIsActive(&context, ref);
    externalscaler::IsActiveResponse out;
    long received = 0;
    while (reader->Read(&out)) {
      PrintMessage(out);
      if (count > 0 && ++received >= count) {
        context.TryCancel();
        break;
      }
    }
    status = reader->Finish();
  } else {
    return Usage(("unknown method " + method).c_str());
  }
  PrintStatus(status);
  return 0;
}
