#include "routing/picker_registry.h"

#include "routing/least_request_picker.h"
#include "routing/power_of_two_picker.h"
#include "routing/round_robin_picker.h"

namespace tokenway {

std::unique_ptr<Picker> MakePicker(std::string_view name) {
  if (name == "round-robin") return std::make_unique<RoundRobinPicker>();
  if (name == "least-request") return std::make_unique<LeastRequestPicker>();
  if (name == "power-of-two") return std::make_unique<PowerOfTwoPicker>();
  return nullptr;
}

}  // namespace tokenway
