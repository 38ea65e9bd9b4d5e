// ProcessorMatch: which requests a payload processor applies to (processors[].match) — by model
// and by tenant, an empty list meaning every one. Read-only after load; worker threads call
// Matches(). MatchedProcessor: the name and match every configured processor has, and the
// name() and Applies() they give, as the base of the request and response processors.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenway/payload.h"

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

// Base: RequestProcessor or ResponseProcessor.
template <class Base>
class MatchedProcessor : public Base {
 public:
  std::string_view name() const override { return name_; }
  bool Applies(std::string_view model, std::string_view tenant) const override {
    return match_.Matches(model, tenant);
  }

 protected:
  MatchedProcessor(std::string name, ProcessorMatch match)
      : name_(std::move(name)), match_(std::move(match)) {}
  const std::string name_;  // processors[].name: metrics, flags, error messages
  const ProcessorMatch match_;
};

}  // namespace tokenway
