// Phase 2 of the request path: identify and govern (governance/). Runs only when the snapshot
// has a governance section.
//
// The Authorization header names the tenant (401 otherwise), the tenant must be allowed the
// model (403) and a max_tokens within its cap (400), and the limiter must reserve the request's
// estimated tokens (429 with Retry-After, or 503 when the limiter backend is down and fails
// closed). The reservation is settled with the real usage in phase 8, on every path.
#include "common/openai_error.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "governance/token_estimate.h"

namespace tokenway {

namespace asio = boost::asio;

namespace {

std::string_view AuthMessage(AuthFailure f) {
  switch (f) {
    case AuthFailure::kMissing:
      return "You didn't provide an API key. Provide it in the Authorization header as "
             "'Bearer <key>'.";
    case AuthFailure::kMalformed:
      return "The Authorization header must be 'Bearer <key>'.";
    case AuthFailure::kTooLong:
      return "The API key provided is too long.";
    default:
      return "Incorrect API key provided.";
  }
}

}  // namespace

asio::awaitable<PhaseResult> Govern(RequestContext& ctx) {
  if (!ctx.runtime->governance) co_return PhaseResult::kContinue;
  const GovernanceSnapshot& gov = *ctx.runtime->governance;
  GovernanceState& state = *gov.state;
  RequestGovernance& g = ctx.governance;
  const InspectedRequest& req = ctx.inspected;
  const std::string& model = req.model;

  // Identity.
  AuthResult auth = Authenticate(*gov.table, ctx.parser->authorization.in(ctx.base));
  if (auth.failure != AuthFailure::kNone) {
    state.auth_failures[static_cast<int>(auth.failure)].fetch_add(1, std::memory_order_relaxed);
    co_return ctx.Fail(401, AuthMessage(auth.failure), "invalid_api_key", {},
                       "WWW-Authenticate: Bearer\r\n");
  }
  const Tenant& tenant = *auth.tenant;
  g.tenant_ = &tenant;
  g.key_ = auth.key;
  ctx.record.tenant = tenant.name;
  auto count = [&](TenantOutcome o) {
    tenant.stats->requests[static_cast<int>(o)].fetch_add(1, std::memory_order_relaxed);
  };
  if (!tenant.MayUse(model)) {
    count(TenantOutcome::kForbidden);
    co_return ctx.Fail(403, "This API key is not allowed to use the model '" + model + "'",
                       "model_not_allowed", "model");
  }
  if (req.max_tokens > tenant.max_tokens_cap) {
    count(TenantOutcome::kInvalid);
    co_return ctx.Fail(400,
                       "max_tokens is " + std::to_string(req.max_tokens) +
                           "; this tenant allows at most " + std::to_string(tenant.max_tokens_cap),
                       "max_tokens_too_large", "max_tokens");
  }

  // Reserve: estimated input plus max_tokens (or the cap), against every scope.
  Reservation& r = g.reservation_;
  r.scopes[r.n_scopes++] = &tenant.scope;
  if (auth.key && auth.key->scope) r.scopes[r.n_scopes++] = auth.key->scope.get();
  if (const LimitScope* s = tenant.ModelScope(model)) r.scopes[r.n_scopes++] = s;
  g.estimated_input_ = ctx.prompt_tokens;
  if (!gov.post_hoc) {
    r.input = g.estimated_input_;
    r.output = OutputReservation(req.max_tokens, tenant.max_tokens_cap,
                                 req.operation == Operation::kEmbeddings);
  }
  Decision d = co_await gov.limiter->Reserve(r);
  switch (d.result) {
    case Decision::Result::kAllowed:
      count(TenantOutcome::kAllowed);
      AppendRateLimitHeaders(g.headers_, d, false);
      co_return PhaseResult::kContinue;
    case Decision::Result::kLimited: {
      count(TenantOutcome::kRateLimited);
      tenant.stats->rate_limited[static_cast<int>(d.limit)].fetch_add(1, std::memory_order_relaxed);
      std::string headers;
      AppendRateLimitHeaders(headers, d, true);
      co_return ctx.Fail(429,
                         "Rate limit reached for tenant '" + tenant.name + "' on " +
                             std::string(LimitName(d.limit)) + "; retry after " +
                             std::to_string((d.retry_after_ms + 999) / 1000) + " s",
                         "rate_limit_exceeded", {}, headers);
    }
    case Decision::Result::kBackendDown:
      count(TenantOutcome::kLimiterUnavailable);
      co_return ctx.Fail(503, "the rate limiter is unavailable; retry later",
                         "rate_limiter_unavailable", {}, "Retry-After: 1\r\n");
  }
  co_return PhaseResult::kContinue;
}

}  // namespace tokenway
