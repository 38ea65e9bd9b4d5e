// Kubernetes API objects as discovery needs them, and their JSON decoding.
//
// WatchStreamSplitter cuts the body of a WATCH response (chunked, streamed) into JSON values:
// the API server writes one event object per line, and several values may also follow each other
// on one line; chunk boundaries are ignored. KubeJsonDecoder turns a watch event, a LIST page or
// an error body into the few fields discovery reads (simdjson DOM, one parser reused). Both are
// used by KubeReflector on the control thread; neither allocates per byte, and no input makes them
// throw or crash: bad input comes back as an error string (the fuzz target holds them to that).
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tokenway {

// Pod annotations that describe an endpoint (documented in docs/configuration.md).
inline constexpr std::string_view kEngineAnnotation = "tokenway.io/engine";
inline constexpr std::string_view kAcceleratorAnnotation = "tokenway.io/accelerator";
inline constexpr std::string_view kCapacityAnnotation = "tokenway.io/capacity";
// On an InferenceObjective: the model it sets the priority of (default: the objective's name).
inline constexpr std::string_view kModelAnnotation = "tokenway.io/model";

enum class KubeKind { kPod, kInferencePool, kResourceClaim, kResourceSlice, kInferenceObjective };

struct KubePod {
  std::string namespace_name, name;
  std::string pod_ip;     // status.podIP; empty until scheduled and networked
  std::string node_name;  // spec.nodeName
  bool ready = false;     // status.conditions[type=Ready].status == "True"
  bool deleting = false;  // metadata.deletionTimestamp is set
  // The tokenway.io/* annotations, as written (validated when endpoints are built).
  std::string engine, accelerator, capacity;
  // ResourceClaims the pod uses (spec.resourceClaims[].resourceClaimName and the generated names
  // of status.resourceClaimStatuses[]), for DRA capacity.
  std::vector<std::string> claims;
  bool operator==(const KubePod&) const = default;
};

struct KubeInferencePool {
  std::string namespace_name, name;
  std::map<std::string, std::string> match_labels;  // spec.selector.matchLabels
  std::vector<uint16_t> target_ports;               // spec.targetPorts[].number
  bool operator==(const KubeInferencePool&) const = default;
};

// One allocated device: <driver>/<pool>/<device>.
struct KubeDeviceRef {
  std::string driver, pool, device;
  bool operator==(const KubeDeviceRef&) const = default;
};

// resource.k8s.io/v1 ResourceClaim: the devices of status.allocation.devices.results[].
struct KubeResourceClaim {
  std::string namespace_name, name;
  std::vector<KubeDeviceRef> devices;
  bool operator==(const KubeResourceClaim&) const = default;
};

// resource.k8s.io/v1 ResourceSlice (cluster-scoped): its devices' product names (the
// `productName` attribute, as the NVIDIA DRA driver publishes it).
struct KubeResourceSlice {
  std::string name;
  std::string driver;                                         // spec.driver
  std::string pool;                                           // spec.pool.name
  std::vector<std::pair<std::string, std::string>> products;  // device name → productName
  bool operator==(const KubeResourceSlice&) const = default;
};

// InferenceObjective (GIE v1alpha2): the serving priority of the model it names.
struct KubeInferenceObjective {
  std::string namespace_name, name;
  std::string pool;      // spec.poolRef.name
  std::string model;     // the tokenway.io/model annotation, else the objective's name
  int32_t priority = 0;  // spec.priority; unset means 0
  bool operator==(const KubeInferenceObjective&) const = default;
};

using KubeObject = std::variant<KubePod, KubeInferencePool, KubeResourceClaim, KubeResourceSlice,
                                KubeInferenceObjective>;

// A metav1.Status (an ERROR event's object, or the body of a failed request).
struct KubeStatus {
  int code = 0;
  std::string reason;
  std::string message;
};

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };
std::string_view WatchEventTypeName(WatchEventType type);  // "added", "modified", ...

struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  std::string resource_version;  // metadata.resourceVersion of the object (not for ERROR)
  std::string key;               // namespace/name (ADDED, MODIFIED, DELETED)
  KubeObject object;             // ADDED, MODIFIED, DELETED
  KubeStatus status;             // ERROR
};

struct KubeListPage {
  std::string resource_version;  // metadata.resourceVersion: where the watch starts
  std::string continue_token;    // metadata.continue; empty on the last page
  std::vector<std::pair<std::string, KubeObject>> items;  // by namespace/name
};

class KubeJsonDecoder {
 public:
  // One watch event. False, with `error` saying why, for input that is not a well-formed event
  // of `kind` (the caller counts and skips it).
  bool ParseEvent(std::string_view json, KubeKind kind, WatchEvent& out, std::string& error);
  // One LIST page; items are appended to `out.items`.
  bool ParseList(std::string_view json, KubeKind kind, KubeListPage& out, std::string& error);
  // A Status body; false when `json` is not one.
  bool ParseStatus(std::string_view json, KubeStatus& out);

 private:
  simdjson::dom::parser parser_;
};

// Splits a byte stream into JSON values (objects or arrays) without parsing them.
class WatchStreamSplitter {
 public:
  enum class Piece { kValue, kMalformed, kOversized };

  explicit WatchStreamSplitter(size_t max_value_bytes) : max_(max_value_bytes) {}

  // Feeds the next bytes; `sink(Piece, std::string_view value)` runs for every complete value
  // (kValue, the view valid during the call), every malformed stretch (text that is not a value,
  // or a value broken by a line break or unbalanced) and every value longer than the limit; both
  // of the latter are skipped up to where the stream can be read again.
  template <typename Sink>
  void Feed(std::string_view bytes, Sink&& sink) {
    for (char c : bytes) {
      Piece done;
      if (Step(c, done)) {
        sink(done, std::string_view(current_));
        current_.clear();
      }
    }
  }
  // Bytes of the value being assembled (tests).
  size_t pending() const { return current_.size(); }

 private:
  bool Step(char c, Piece& done);
  void Reset();

  size_t max_;
  std::string current_;
  uint32_t depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  bool junk_ = false;       // inside text that is not a value, until the end of the line
  bool oversized_ = false;  // the current value passed the limit; skipping to its end
  size_t length_ = 0;       // bytes of the current value, also while oversized
};

}  // namespace tokenway
