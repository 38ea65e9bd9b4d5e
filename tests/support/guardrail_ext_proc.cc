#include "support/guardrail_ext_proc.h"

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/impl/service_type.h>
#include <grpcpp/support/method_handler.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/sync_stream.h>

#include <mutex>
#include <thread>

#include "envoy/service/ext_proc/v3/external_processor.pb.h"

namespace tokenway::testing {

namespace {

namespace ext_proc = envoy::service::ext_proc::v3;
using Stream = grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;
using Kind = GuardrailDecision::Kind;

bool Send(Stream* stream, const ext_proc::ProcessingResponse& m) {
  grpc::ByteBuffer buffer;
  bool own = false;
  if (!grpc::SerializationTraits<ext_proc::ProcessingResponse>::Serialize(m, &buffer, &own).ok()) {
    return false;
  }
  return stream->Write(buffer);
}

bool Parse(grpc::ByteBuffer& buffer, ext_proc::ProcessingRequest& m) {
  grpc::ProtoBufferReader reader(&buffer);
  return m.ParseFromZeroCopyStream(&reader);
}

ext_proc::ProcessingResponse Immediate(const GuardrailDecision& d) {
  ext_proc::ProcessingResponse r;
  auto* im = r.mutable_immediate_response();
  im->mutable_status()->set_code(static_cast<envoy::type::v3::StatusCode>(d.status));
  im->set_body(d.body);
  im->set_details("guardrail");
  return r;
}

}  // namespace

class GuardrailExtProc::Service : public grpc::Service {
 public:
  Service(GuardrailExtProc& owner, Decide decide) : owner_(owner), decide_(std::move(decide)) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        "/envoy.service.ext_proc.v3.ExternalProcessor/Process",
        grpc::internal::RpcMethod::BIDI_STREAMING,
        new grpc::internal::BidiStreamingHandler<Service, grpc::ByteBuffer, grpc::ByteBuffer>(
            [](Service* s, grpc::ServerContext* ctx, Stream* stream) {
              return s->Process(ctx, stream);
            },
            this)));
  }

  std::string last_headers() const {
    std::lock_guard lock(mu_);
    return last_headers_;
  }

 private:
  grpc::Status Process(grpc::ServerContext* ctx, Stream* stream) {
    owner_.streams.fetch_add(1);
    grpc::ByteBuffer in;
    ext_proc::ProcessingRequest req;
    // The headers.
    if (!stream->Read(&in) || !Parse(in, req) || !req.has_request_headers()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "expected request_headers");
    }
    owner_.headers_seen.fetch_add(1);
    {
      std::string text;
      for (const auto& h : req.request_headers().headers().headers()) {
        text += h.key() + ": " + (h.raw_value().empty() ? h.value() : h.raw_value()) + "\n";
      }
      std::lock_guard lock(mu_);
      last_headers_ = std::move(text);
    }
    GuardrailDecision d = decide_("");
    switch (d.kind) {
      case Kind::kDenyOnHeaders:
        Send(stream, Immediate(d));
        return grpc::Status::OK;
      case Kind::kMutateOnHeaders: {
        ext_proc::ProcessingResponse r;
        auto* common = r.mutable_request_headers()->mutable_response();
        common->set_status(ext_proc::CommonResponse::CONTINUE_AND_REPLACE);
        common->mutable_body_mutation()->set_body(d.body);
        Send(stream, r);
        return grpc::Status::OK;
      }
      case Kind::kWrongOrder: {
        ext_proc::ProcessingResponse r;
        r.mutable_response_headers();
        Send(stream, r);
        return grpc::Status::OK;
      }
      case Kind::kGarbage: {
        const std::string junk = "\xff\xff\xff\xff\x0f not a protobuf";
        grpc::Slice slice(junk);
        stream->Write(grpc::ByteBuffer(&slice, 1));
        return grpc::Status::OK;
      }
      case Kind::kError:
        return grpc::Status(static_cast<grpc::StatusCode>(d.grpc_code), "guardrail error");
      case Kind::kEndEarly:
        return grpc::Status::OK;
      case Kind::kHang:
        while (!ctx->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return grpc::Status::CANCELLED;
      default:
        break;
    }
    {
      ext_proc::ProcessingResponse r;
      r.mutable_request_headers()->mutable_response();
      if (!Send(stream, r)) return grpc::Status::CANCELLED;
    }
    // The buffered body.
    if (!stream->Read(&in) || !Parse(in, req) || !req.has_request_body()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "expected request_body");
    }
    owner_.bodies.fetch_add(1);
    d = decide_(req.request_body().body());
    ext_proc::ProcessingResponse r;
    switch (d.kind) {
      case Kind::kDeny:
        r = Immediate(d);
        break;
      case Kind::kMutate:
        r.mutable_request_body()->mutable_response()->mutable_body_mutation()->set_body(d.body);
        break;
      default:
        r.mutable_request_body()->mutable_response();
        break;
    }
    Send(stream, r);
    // Like Envoy's peers: wait for the client to half-close or go.
    while (stream->Read(&in)) {
    }
    return grpc::Status::OK;
  }

  GuardrailExtProc& owner_;
  Decide decide_;
  mutable std::mutex mu_;
  std::string last_headers_;
};

GuardrailExtProc::GuardrailExtProc(Decide decide)
    : service_(std::make_unique<Service>(*this, std::move(decide))) {}

GuardrailExtProc::~GuardrailExtProc() {
  Stop();
}

int GuardrailExtProc::Start(int port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                           &port_);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_) port_ = 0;
  return port_;
}

void GuardrailExtProc::Stop() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    server_.reset();
  }
}

std::string GuardrailExtProc::last_headers() const {
  return service_->last_headers();
}

}  // namespace tokenway::testing
