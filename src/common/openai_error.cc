#include "common/openai_error.h"

#include "common/json_writer.h"

namespace tokenway {

void AppendOpenAiError(std::string& out, std::string_view message, std::string_view type,
                       std::string_view param, std::string_view code) {
  JsonWriter w(out);
  w.BeginObject().Key("error").BeginObject();
  w.Key("message").String(message).Key("type").String(type).Key("param");
  if (param.empty()) {
    w.Null();
  } else {
    w.String(param);
  }
  w.Key("code").String(code);
  w.EndObject().EndObject();
}

std::string_view ErrorTypeForStatus(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 429:
      return "rate_limit_error";
    case 502:
    case 504:
      return "upstream_error";
    case 503:
      return "service_unavailable";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

}  // namespace tokenway
