// Validation of the engine model against published reference points (docs/simulator.md,
// "Validation"): drives an Engine with a fake clock, no sockets and no sleeping, and prints the
// figures the documentation quotes. Run by `tokenway-sim --validate [--profile NAME]`.
#pragma once

#include <ostream>

#include "sim/profiles.h"

namespace tokenway::sim {

// Writes the validation report as Markdown tables (and, with `json`, one JSON object instead)
// to `out`. Returns false if any check is outside its tolerance.
bool RunValidation(const HardwareProfile& profile, bool json, std::ostream& out);

}  // namespace tokenway::sim
