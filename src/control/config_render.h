// RenderConfigJson: the effective configuration as JSON, the body of /admin/config.
//
// Called on the control thread when a Runtime is built (the body is kept pre-rendered in the
// snapshot). Every field appears with its effective value (defaults filled in, each endpoint's
// inherited engine and resolved capacity); configured numbers render exactly. API keys and their
// digests are never rendered: governance tenants show key ids only.
#pragma once

#include <string>

#include "control/config.h"

namespace tokenway {

std::string RenderConfigJson(const GatewayConfig& config);

}  // namespace tokenway
