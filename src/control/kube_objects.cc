#include "control/kube_objects.h"

#include <algorithm>

namespace tokenway {

namespace dom = simdjson::dom;

std::string_view WatchEventTypeName(WatchEventType type) {
  switch (type) {
    case WatchEventType::kAdded:
      return "added";
    case WatchEventType::kModified:
      return "modified";
    case WatchEventType::kDeleted:
      return "deleted";
    case WatchEventType::kBookmark:
      return "bookmark";
    case WatchEventType::kError:
      return "error";
  }
  return "unknown";
}

namespace {

// A string member of `e`, or empty when absent, null or not a string.
std::string_view Str(dom::element e, std::string_view key) {
  std::string_view v;
  if (e[key].get_string().get(v) != simdjson::SUCCESS) return {};
  return v;
}

bool Present(dom::element e, std::string_view key) {
  dom::element v;
  return e[key].get(v) == simdjson::SUCCESS && !v.is_null();
}

bool Metadata(dom::element obj, std::string& ns, std::string& name, std::string& error) {
  dom::element md;
  if (obj["metadata"].get(md) != simdjson::SUCCESS || !md.is_object()) {
    error = "object has no metadata";
    return false;
  }
  name = std::string(Str(md, "name"));
  ns = std::string(Str(md, "namespace"));
  if (name.empty()) {
    error = "object has no metadata.name";
    return false;
  }
  return true;
}

bool DecodePod(dom::element obj, KubePod& pod, std::string& error) {
  if (!Metadata(obj, pod.namespace_name, pod.name, error)) return false;
  dom::element md;
  if (obj["metadata"].get(md) != simdjson::SUCCESS) return false;
  pod.deleting = Present(md, "deletionTimestamp");
  dom::element annotations;
  if (md["annotations"].get(annotations) == simdjson::SUCCESS && annotations.is_object()) {
    pod.engine = std::string(Str(annotations, kEngineAnnotation));
    pod.accelerator = std::string(Str(annotations, kAcceleratorAnnotation));
    pod.capacity = std::string(Str(annotations, kCapacityAnnotation));
  }
  dom::element spec;
  if (obj["spec"].get(spec) == simdjson::SUCCESS) {
    pod.node_name = std::string(Str(spec, "nodeName"));
    dom::array claims;
    if (spec["resourceClaims"].get(claims) == simdjson::SUCCESS) {
      for (dom::element c : claims) {
        std::string_view name = Str(c, "resourceClaimName");
        if (!name.empty()) pod.claims.emplace_back(name);
      }
    }
  }
  dom::element status;
  if (obj["status"].get(status) == simdjson::SUCCESS && status.is_object()) {
    pod.pod_ip = std::string(Str(status, "podIP"));
    dom::array conditions;
    if (status["conditions"].get(conditions) == simdjson::SUCCESS) {
      for (dom::element c : conditions) {
        if (Str(c, "type") == "Ready") pod.ready = Str(c, "status") == "True";
      }
    }
    dom::array claims;
    if (status["resourceClaimStatuses"].get(claims) == simdjson::SUCCESS) {
      for (dom::element c : claims) {
        std::string_view name = Str(c, "resourceClaimName");
        if (!name.empty() &&
            std::find(pod.claims.begin(), pod.claims.end(), name) == pod.claims.end()) {
          pod.claims.emplace_back(name);
        }
      }
    }
  }
  return true;
}

bool DecodeInferencePool(dom::element obj, KubeInferencePool& pool, std::string& error) {
  if (!Metadata(obj, pool.namespace_name, pool.name, error)) return false;
  dom::element spec;
  if (obj["spec"].get(spec) != simdjson::SUCCESS || !spec.is_object()) {
    error = "InferencePool has no spec";
    return false;
  }
  dom::object labels;
  if (spec["selector"]["matchLabels"].get(labels) != simdjson::SUCCESS) {
    error = "InferencePool has no spec.selector.matchLabels";
    return false;
  }
  for (auto field : labels) {
    std::string_view v;
    if (field.value.get_string().get(v) != simdjson::SUCCESS) {
      error = "InferencePool spec.selector.matchLabels values must be strings";
      return false;
    }
    pool.match_labels.emplace(std::string(field.key), std::string(v));
  }
  dom::array ports;
  if (spec["targetPorts"].get(ports) != simdjson::SUCCESS) {
    error = "InferencePool has no spec.targetPorts";
    return false;
  }
  for (dom::element p : ports) {
    int64_t n = 0;
    if (p["number"].get_int64().get(n) != simdjson::SUCCESS || n < 1 || n > 65535) {
      error = "InferencePool spec.targetPorts[].number must be a port number";
      return false;
    }
    pool.target_ports.push_back(static_cast<uint16_t>(n));
  }
  if (pool.match_labels.empty() || pool.target_ports.empty()) {
    error = "InferencePool needs matchLabels and targetPorts";
    return false;
  }
  return true;
}

bool DecodeResourceClaim(dom::element obj, KubeResourceClaim& claim, std::string& error) {
  if (!Metadata(obj, claim.namespace_name, claim.name, error)) return false;
  dom::array results;
  if (obj["status"]["allocation"]["devices"]["results"].get(results) != simdjson::SUCCESS) {
    return true;  // not allocated (yet)
  }
  for (dom::element r : results) {
    KubeDeviceRef d{std::string(Str(r, "driver")), std::string(Str(r, "pool")),
                    std::string(Str(r, "device"))};
    if (d.driver.empty() || d.pool.empty() || d.device.empty()) {
      error = "ResourceClaim allocation result without driver, pool or device";
      return false;
    }
    claim.devices.push_back(std::move(d));
  }
  return true;
}

// A device attribute's string value: attributes[name] or attributes["<driver>/name"], each
// {"string": "..."} (resource.k8s.io/v1; v1beta1 nests them under "basic").
std::string_view DeviceAttribute(dom::element device, std::string_view driver,
                                 std::string_view name) {
  dom::element attributes;
  if (device["attributes"].get(attributes) != simdjson::SUCCESS &&
      device["basic"]["attributes"].get(attributes) != simdjson::SUCCESS) {
    return {};
  }
  dom::element value;
  if (attributes[name].get(value) != simdjson::SUCCESS) {
    std::string qualified = std::string(driver) + "/" + std::string(name);
    if (attributes[qualified].get(value) != simdjson::SUCCESS) return {};
  }
  return Str(value, "string");
}

bool DecodeResourceSlice(dom::element obj, KubeResourceSlice& slice, std::string& error) {
  std::string ns;
  if (!Metadata(obj, ns, slice.name, error)) return false;
  dom::element spec;
  if (obj["spec"].get(spec) != simdjson::SUCCESS || !spec.is_object()) {
    error = "ResourceSlice has no spec";
    return false;
  }
  slice.driver = std::string(Str(spec, "driver"));
  dom::element pool;
  if (spec["pool"].get(pool) == simdjson::SUCCESS) slice.pool = std::string(Str(pool, "name"));
  if (slice.driver.empty() || slice.pool.empty()) {
    error = "ResourceSlice has no spec.driver or spec.pool.name";
    return false;
  }
  dom::array devices;
  if (spec["devices"].get(devices) != simdjson::SUCCESS) return true;
  for (dom::element d : devices) {
    std::string_view name = Str(d, "name");
    if (name.empty()) continue;
    slice.products.emplace_back(std::string(name),
                                std::string(DeviceAttribute(d, slice.driver, "productName")));
  }
  return true;
}

bool DecodeInferenceObjective(dom::element obj, KubeInferenceObjective& o, std::string& error) {
  if (!Metadata(obj, o.namespace_name, o.name, error)) return false;
  dom::element annotations;
  if (obj["metadata"]["annotations"].get(annotations) == simdjson::SUCCESS &&
      annotations.is_object()) {
    o.model = std::string(Str(annotations, kModelAnnotation));
  }
  if (o.model.empty()) o.model = o.name;
  dom::element spec;
  if (obj["spec"].get(spec) != simdjson::SUCCESS || !spec.is_object()) {
    error = "InferenceObjective has no spec";
    return false;
  }
  dom::element ref;
  if (spec["poolRef"].get(ref) == simdjson::SUCCESS) o.pool = std::string(Str(ref, "name"));
  if (o.pool.empty()) {
    error = "InferenceObjective has no spec.poolRef.name";
    return false;
  }
  dom::element priority;
  if (spec["priority"].get(priority) == simdjson::SUCCESS && !priority.is_null()) {
    int64_t p = 0;
    if (priority.get_int64().get(p) != simdjson::SUCCESS || p < -1000000 || p > 1000000) {
      error = "InferenceObjective spec.priority must be an integer in [-1000000, 1000000]";
      return false;
    }
    o.priority = static_cast<int32_t>(p);
  }
  return true;
}

bool DecodeObject(dom::element obj, KubeKind kind, KubeObject& out, std::string& key,
                  std::string& error) {
  if (!obj.is_object()) {
    error = "object is not a JSON object";
    return false;
  }
  if (kind == KubeKind::kPod) {
    KubePod pod;
    if (!DecodePod(obj, pod, error)) return false;
    key = pod.namespace_name + "/" + pod.name;
    out = std::move(pod);
  } else if (kind == KubeKind::kInferencePool) {
    KubeInferencePool pool;
    if (!DecodeInferencePool(obj, pool, error)) return false;
    key = pool.namespace_name + "/" + pool.name;
    out = std::move(pool);
  } else if (kind == KubeKind::kResourceClaim) {
    KubeResourceClaim claim;
    if (!DecodeResourceClaim(obj, claim, error)) return false;
    key = claim.namespace_name + "/" + claim.name;
    out = std::move(claim);
  } else if (kind == KubeKind::kInferenceObjective) {
    KubeInferenceObjective objective;
    if (!DecodeInferenceObjective(obj, objective, error)) return false;
    key = objective.namespace_name + "/" + objective.name;
    out = std::move(objective);
  } else {
    KubeResourceSlice slice;
    if (!DecodeResourceSlice(obj, slice, error)) return false;
    key = "/" + slice.name;  // cluster-scoped
    out = std::move(slice);
  }
  return true;
}

void DecodeStatus(dom::element obj, KubeStatus& out) {
  int64_t code = 0;
  if (obj["code"].get_int64().get(code) == simdjson::SUCCESS && code >= 0 && code < 1000) {
    out.code = static_cast<int>(code);
  }
  out.reason = std::string(Str(obj, "reason"));
  out.message = std::string(Str(obj, "message"));
}

}  // namespace

bool KubeJsonDecoder::ParseEvent(std::string_view json, KubeKind kind, WatchEvent& out,
                                 std::string& error) {
  dom::element root;
  if (auto e = parser_.parse(json.data(), json.size()).get(root); e != simdjson::SUCCESS) {
    error = std::string("not JSON: ") + simdjson::error_message(e);
    return false;
  }
  std::string_view type;
  if (root["type"].get_string().get(type) != simdjson::SUCCESS) {
    error = "event has no type";
    return false;
  }
  dom::element obj;
  if (root["object"].get(obj) != simdjson::SUCCESS || !obj.is_object()) {
    error = "event has no object";
    return false;
  }
  if (type == "ERROR") {
    out.type = WatchEventType::kError;
    DecodeStatus(obj, out.status);
    return true;
  }
  dom::element md;
  std::string_view rv;
  if (obj["metadata"].get(md) == simdjson::SUCCESS) rv = Str(md, "resourceVersion");
  if (rv.empty()) {
    error = "event object has no metadata.resourceVersion";
    return false;
  }
  out.resource_version = std::string(rv);
  if (type == "BOOKMARK") {
    out.type = WatchEventType::kBookmark;
    return true;
  }
  if (type == "ADDED") {
    out.type = WatchEventType::kAdded;
  } else if (type == "MODIFIED") {
    out.type = WatchEventType::kModified;
  } else if (type == "DELETED") {
    out.type = WatchEventType::kDeleted;
  } else {
    error = "unknown event type '" + std::string(type.substr(0, 32)) + "'";
    return false;
  }
  return DecodeObject(obj, kind, out.object, out.key, error);
}

bool KubeJsonDecoder::ParseList(std::string_view json, KubeKind kind, KubeListPage& out,
                                std::string& error) {
  dom::element root;
  if (auto e = parser_.parse(json.data(), json.size()).get(root); e != simdjson::SUCCESS) {
    error = std::string("not JSON: ") + simdjson::error_message(e);
    return false;
  }
  dom::element md;
  if (root["metadata"].get(md) != simdjson::SUCCESS || !md.is_object()) {
    error = "list has no metadata";
    return false;
  }
  out.resource_version = std::string(Str(md, "resourceVersion"));
  out.continue_token = std::string(Str(md, "continue"));
  if (out.resource_version.empty()) {
    error = "list has no metadata.resourceVersion";
    return false;
  }
  dom::element items;
  if (root["items"].get(items) != simdjson::SUCCESS) {
    error = "list has no items";
    return false;
  }
  if (items.is_null()) return true;  // an empty list may say "items": null
  dom::array array;
  if (items.get(array) != simdjson::SUCCESS) {
    error = "list items is not an array";
    return false;
  }
  for (dom::element item : array) {
    KubeObject obj;
    std::string key;
    std::string item_error;
    // One bad item does not hide the others; it is reported with the first such error.
    if (!DecodeObject(item, kind, obj, key, item_error)) {
      if (error.empty()) error = item_error;
      continue;
    }
    out.items.emplace_back(std::move(key), std::move(obj));
  }
  return true;
}

bool KubeJsonDecoder::ParseStatus(std::string_view json, KubeStatus& out) {
  dom::element root;
  if (parser_.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) return false;
  if (!root.is_object() || Str(root, "kind") != "Status") return false;
  DecodeStatus(root, out);
  return true;
}

void WatchStreamSplitter::Reset() {
  depth_ = 0;
  in_string_ = false;
  escape_ = false;
  oversized_ = false;
  length_ = 0;
}

bool WatchStreamSplitter::Step(char c, Piece& done) {
  if (junk_) {
    if (c != '\n') return false;
    junk_ = false;
    done = Piece::kMalformed;
    return true;
  }
  if (depth_ == 0) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') return false;
    if (c == '{' || c == '[') {
      depth_ = 1;
      length_ = 1;
      current_.push_back(c);
      return false;
    }
    junk_ = true;
    return false;
  }
  ++length_;
  if (!oversized_) {
    if (length_ > max_) {
      oversized_ = true;
      std::string().swap(current_);  // give the memory back while skipping
    } else {
      current_.push_back(c);
    }
  }
  if (in_string_) {
    if (escape_) {
      escape_ = false;
    } else if (c == '\\') {
      escape_ = true;
    } else if (c == '"') {
      in_string_ = false;
    } else if (c == '\n') {  // a raw line break never occurs inside a JSON string
      Reset();
      done = Piece::kMalformed;
      return true;
    }
    return false;
  }
  switch (c) {
    case '"':
      in_string_ = true;
      return false;
    case '{':
    case '[':
      ++depth_;
      return false;
    case '}':
    case ']':
      if (--depth_ > 0) return false;
      done = oversized_ ? Piece::kOversized : Piece::kValue;
      Reset();
      return true;
    case '\n':
      // The API server writes every event on one line; a value still open at a line break is
      // broken, and the next line starts afresh.
      Reset();
      done = Piece::kMalformed;
      return true;
    default:
      return false;
  }
}

}  // namespace tokenway
