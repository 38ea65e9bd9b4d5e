// The registry of pickers by the name used in configuration ("policy").
#pragma once

#include <memory>
#include <string_view>

#include "tokenway/picker.h"

namespace tokenway {

// Returns nullptr for an unknown name (configuration validation rejects those first).
std::unique_ptr<Picker> MakePicker(std::string_view name);

}  // namespace tokenway
