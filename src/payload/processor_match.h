// ProcessorMatch: which requests a payload processor applies to (processors[].match) — by model
// and by tenant, an empty list meaning every one. Read-only after load; worker threads call
// Matches().
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace tokenway {

struct ProcessorMatch {
  std::vector<std::string> models;   // empty: every model
  std::vector<std::string> tenants;  // empty: every tenant (and requests without one)
  bool Matches(std::string_view model, std::string_view tenant) const {
    auto in = [](const std::vector<std::string>& list, std::string_view v) {
      return list.empty() || std::find(list.begin(), list.end(), v) != list.end();
    };
    return in(models, model) && in(tenants, tenant);
  }
};

}  // namespace tokenway
