// PayloadConfig: the `processors:` section of the configuration — an ordered list of payload
// processors, each with a `match`, a `type` (patterns, pii, limits, system_prompt, images, and
// the external webhook and ext_proc) and its settings — its YAML
// loader, its JSON rendering, and BuildPayloadChain, which turns it into the Runtime's
// PayloadChain.
//
// Loaded and validated on the control thread (control/config.cc calls LoadProcessorsConfig; a
// pattern RE2 rejects fails the load with the file, line and field); built again into a chain for
// every Runtime snapshot. docs/configuration.md documents each field.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <utility>
#include <vector>

#include "payload/external_processor.h"
#include "payload/image_parts_processor.h"
#include "payload/limits_processor.h"
#include "payload/pattern_scanner.h"
#include "payload/processor_match.h"
#include "payload/system_prompt_processor.h"
#include "tokenway/payload.h"
#include "tokenway/status.h"

namespace tokenway {

class JsonWriter;

struct ProcessorConfig {
  std::string name;  // default: <type>_<index>; names metrics and errors
  std::string type;  // patterns | pii | limits | system_prompt | images | webhook | ext_proc
  ProcessorMatch match;
  bool request = true;                      // patterns/pii: scan prompts
  bool response = true;                     // patterns/pii: scan responses
  uint32_t window = 64;                     // patterns/pii on streams: characters held back at most
  std::vector<PatternRuleConfig> patterns;  // type patterns
  std::vector<std::pair<std::string, ScanAction>> detectors;  // type pii (default: all)
  LimitsProcessorConfig limits;                               // type limits
  SystemPromptConfig system_prompt;                           // type system_prompt
  ImagePartsConfig images;                                    // type images
  ExternalProcessorConfig external;                           // types webhook and ext_proc
};

// The types accepted in processors[].type.
const std::vector<std::string>& KnownProcessorTypes();

// The pii detectors and actions when a pii processor lists none.
std::vector<std::pair<std::string, ScanAction>> DefaultPiiDetectors();

// Reads processors: (a sequence) and validates each processor by building it.
StatusOr<std::vector<ProcessorConfig>> LoadProcessorsConfig(const YAML::Node& node,
                                                            const std::string& source);

// Builds the chain in configuration order.
StatusOr<PayloadChain> BuildPayloadChain(const std::vector<ProcessorConfig>& processors);

// Renders the section for /admin/config.
void WriteProcessorsConfig(JsonWriter& w, const std::vector<ProcessorConfig>& processors);

}  // namespace tokenway
