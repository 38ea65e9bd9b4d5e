#include "governance/tenant_registry.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include "common/json_writer.h"

#include "common/tokenizer.h"
#include "governance/authenticator.h"
#include "governance/governance_config.h"
#include "governance/keys_file.h"
#include "governance/local_limiter.h"
#include "governance/token_estimate.h"

namespace tokenway {
namespace {

StatusOr<GovernanceConfig> Load(const std::string& yaml) {
  return LoadGovernanceConfig(YAML::Load(yaml), "test.yaml");
}

std::unique_ptr<TenantTable> Table(const GovernanceConfig& c,
                                   const std::vector<KeyFileEntry>& keys = {}) {
  static LocalLimiter limiter(60'000);
  TenantTable::Binder b;
  b.counters = [](const std::string& id) { return limiter.CountersFor(id); };
  b.stats = [](const std::string&) { return std::make_shared<TenantStats>(); };
  auto t = TenantTable::Build(c, keys, b);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? std::move(*t) : nullptr;
}

const char* kConfig = R"(
anonymous_tenant: free
tenants:
  - name: acme
    keys:
      - {id: k1, key: sk-acme-secret-1}
      - {id: k2, sha256: 2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824}
    models: [m1]
    priority: 5
    labels: {team: research}
    limits:
      tokens_per_minute: 1000
      per_key: {requests_per_minute: 10}
      per_model: {m1: {tokens_per_day: 5000}}
    max_tokens_cap: 2048
  - name: free
)";

TEST(GovernanceConfig, LoadsTenantsKeysAndLimits) {
  auto c = Load(kConfig);
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->tenants.size(), 2u);
  const TenantConfig& t = c->tenants[0];
  EXPECT_EQ(t.keys[0].sha256, Sha256Hex("sk-acme-secret-1"));
  EXPECT_EQ(t.keys[1].sha256, Sha256Hex("hello"));  // upper-case hex accepted
  EXPECT_EQ(t.limits.tokens_per_minute, 1000);
  EXPECT_EQ(t.per_key.requests_per_minute, 10);
  EXPECT_EQ(t.per_model.at("m1").tokens_per_day, 5000);
  EXPECT_TRUE(t.has_priority);
  EXPECT_EQ(t.priority, 5);
  EXPECT_EQ(c->backend, "local");
}

TEST(GovernanceConfig, ErrorsNameTheFieldAndLine) {
  auto bad = Load("tenants:\n  - name: a\n    limits: {tokens_per_minute: -5}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("test.yaml:3"), std::string::npos);
  EXPECT_NE(bad.status().message().find("tokens_per_minute"), std::string::npos);
  EXPECT_FALSE(Load("backend: memcached\n").ok());
  EXPECT_FALSE(Load("redis: {fail_mode: maybe}\n").ok());
  EXPECT_FALSE(Load("anonymous_tenant: nobody\n").ok());
  EXPECT_FALSE(Load("tenants: [{name: a, keys: [{id: k, sha256: abc}]}]\n").ok());
  EXPECT_FALSE(Load("tenants: [{name: a}, {name: a}]\n").ok());
  EXPECT_FALSE(Load("tenants: [{name: a, labels: {\"bad-name\": x}}]\n").ok());
  EXPECT_FALSE(Load("tenants: [{name: a, keys: [{id: k, key: short}]}]\n").ok());
}

TEST(GovernanceConfig, JsonShowsKeyIdsButNoKeysOrDigests) {
  auto c = Load(kConfig);
  ASSERT_TRUE(c.ok());
  std::string json;
  JsonWriter w(json);
  WriteGovernanceJson(w, *c);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(json.find("sk-acme-secret-1"), std::string::npos);
  EXPECT_EQ(json.find(Sha256Hex("sk-acme-secret-1")), std::string::npos);
  EXPECT_EQ(json.find("2cf24dba"), std::string::npos);
  EXPECT_NE(json.find("\"k1\""), std::string::npos);
}

TEST(KeysFile, ParsesLinesCommentsAndBlanks) {
  std::string text =
      "# rotated 2026-11\n\nacme  k3\t" + Sha256Hex("a") + "\r\nfree k4 " + Sha256Hex("b") + "\n";
  auto keys = ParseKeysFile(text, "keys");
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].tenant, "acme");
  EXPECT_EQ((*keys)[0].id, "k3");
  EXPECT_EQ((*keys)[1].sha256, Sha256Hex("b"));
}

TEST(KeysFile, AnyErrorRejectsTheWholeFileWithItsLine) {
  std::string good = "acme k3 " + Sha256Hex("a") + "\n";
  auto r = ParseKeysFile(good + "acme k4 not-a-digest\n", "keys");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("keys:2"), std::string::npos);
  EXPECT_FALSE(ParseKeysFile(good + "acme k5\n", "keys").ok());
  EXPECT_FALSE(ParseKeysFile(good + good, "keys").ok());  // the same key twice
  EXPECT_FALSE(ParseKeysFile(good + "ac/me k5 " + Sha256Hex("c") + "\n", "keys").ok());
  EXPECT_FALSE(ParseKeysFile(std::string(2000, 'a') + "\n", "keys").ok());
}

TEST(TenantTable, KeysFromConfigAndFileAndUnknownTenants) {
  auto c = Load(kConfig);
  ASSERT_TRUE(c.ok());
  auto table = Table(*c, {{"free", "f1", Sha256Hex("sk-free-key-1")}});
  ASSERT_TRUE(table);
  EXPECT_EQ(table->key_count(), 3u);
  const ApiKey* k = table->FindKey(DigestOf("sk-free-key-1"));
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->tenant->name, "free");
  EXPECT_EQ(table->FindKey(DigestOf("sk-free-key-2")), nullptr);
  const ApiKey* acme = table->FindKey(DigestOf("sk-acme-secret-1"));
  ASSERT_NE(acme, nullptr);
  ASSERT_NE(acme->scope, nullptr);  // per_key limits give each key a scope
  EXPECT_EQ(acme->scope->id, "k:acme:k1");
  EXPECT_TRUE(acme->tenant->MayUse("m1"));
  EXPECT_FALSE(acme->tenant->MayUse("m2"));
  EXPECT_NE(acme->tenant->ModelScope("m1"), nullptr);
  EXPECT_EQ(acme->tenant->max_tokens_cap, 2048);

  LocalLimiter limiter(60'000);
  TenantTable::Binder b;
  b.counters = [&](const std::string& id) { return limiter.CountersFor(id); };
  b.stats = [](const std::string&) { return std::make_shared<TenantStats>(); };
  EXPECT_FALSE(TenantTable::Build(*c, {{"ghost", "g", Sha256Hex("x")}}, b).ok());
  EXPECT_FALSE(TenantTable::Build(*c, {{"free", "dup", Sha256Hex("sk-acme-secret-1")}}, b).ok());
}

TEST(Digest, ConstantTimeCompareAndHexParsing) {
  KeyDigest a = DigestOf("one"), b = DigestOf("one"), c = DigestOf("two");
  EXPECT_TRUE(DigestEquals(a, b));
  EXPECT_FALSE(DigestEquals(a, c));
  KeyDigest parsed;
  ASSERT_TRUE(ParseDigestHex(Sha256Hex("one"), parsed));
  EXPECT_TRUE(DigestEquals(parsed, a));
  EXPECT_FALSE(ParseDigestHex("zz", parsed));
  EXPECT_FALSE(ParseDigestHex(std::string(64, 'g'), parsed));
}

TEST(Authenticator, ParsesBearerStrictly) {
  std::string_view token;
  EXPECT_EQ(ParseBearer("Bearer sk-1", token), AuthFailure::kNone);
  EXPECT_EQ(token, "sk-1");
  EXPECT_EQ(ParseBearer("  bearer \t sk-2  ", token), AuthFailure::kNone);
  EXPECT_EQ(token, "sk-2");
  EXPECT_EQ(ParseBearer("", token), AuthFailure::kMissing);
  EXPECT_EQ(ParseBearer("Bearer", token), AuthFailure::kMalformed);
  EXPECT_EQ(ParseBearer("Bearer   ", token), AuthFailure::kMalformed);
  EXPECT_EQ(ParseBearer("Basic dXNlcjpwYXNz", token), AuthFailure::kMalformed);
  EXPECT_EQ(ParseBearer("Bearersk-1", token), AuthFailure::kMalformed);
  EXPECT_EQ(ParseBearer("Bearer a b", token), AuthFailure::kMalformed);
  EXPECT_EQ(ParseBearer("Bearer " + std::string(257, 'a'), token), AuthFailure::kTooLong);
  EXPECT_EQ(ParseBearer("Bearer " + std::string(256, 'a'), token), AuthFailure::kNone);
}

TEST(Authenticator, TenantFromKeyOrAnonymous) {
  auto c = Load(kConfig);
  ASSERT_TRUE(c.ok());
  auto table = Table(*c);
  AuthResult r = Authenticate(*table, "Bearer sk-acme-secret-1");
  ASSERT_EQ(r.failure, AuthFailure::kNone);
  EXPECT_EQ(r.tenant->name, "acme");
  EXPECT_EQ(r.key->id, "k1");
  r = Authenticate(*table, "");
  ASSERT_EQ(r.failure, AuthFailure::kNone);  // anonymous
  EXPECT_EQ(r.tenant->name, "free");
  EXPECT_EQ(r.key, nullptr);
  EXPECT_EQ(Authenticate(*table, "Bearer sk-wrong").failure, AuthFailure::kUnknownKey);
  EXPECT_EQ(Authenticate(*table, "Token x").failure, AuthFailure::kMalformed);
  c->anonymous_tenant.clear();
  auto closed = Table(*c);
  EXPECT_EQ(Authenticate(*closed, "").failure, AuthFailure::kMissing);
}

TEST(TokenEstimate, UsesTheSimulatorRuleAndMaxTokens) {
  EXPECT_EQ(EstimatePromptTokens("user: Hello there\n"), 5);  // "user" ":" " Hello" " there" "\n"
  EXPECT_EQ(EstimatePromptTokens(""), 0);
  EXPECT_EQ(OutputReservation(100, 4096, false), 100);
  EXPECT_EQ(OutputReservation(-1, 4096, false), 4096);
  EXPECT_EQ(OutputReservation(0, 4096, false), 0);
  EXPECT_EQ(OutputReservation(100, 4096, true), 0);
}

}  // namespace
}  // namespace tokenway
