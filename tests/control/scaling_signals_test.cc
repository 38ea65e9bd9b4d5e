// DesiredReplicas: the replica recommendation from throughput, saturation and the gateway queue.
#include "control/scaling_signals.h"

#include <gtest/gtest.h>

namespace tokenway {
namespace {

AutoscalingConfig Config(double per_endpoint, double target = 0.75, uint32_t min = 1,
                         uint32_t max = 0) {
  AutoscalingConfig c;
  c.endpoint_output_tokens_per_second = per_endpoint;
  c.target_utilisation = target;
  c.min_replicas = min;
  c.max_replicas = max;
  return c;
}

TEST(DesiredReplicas, FollowsThroughputAgainstPerEndpointCapacity) {
  // 3000 tokens/s at 1000 per endpoint and a 0.75 target: 4 endpoints.
  EXPECT_EQ(DesiredReplicas(Config(1000), 3000, 0.0, 2, 2, false), 4u);
  // Exactly at target does not round up.
  EXPECT_EQ(DesiredReplicas(Config(1000, 0.5), 1000, 0.0, 2, 2, false), 2u);
}

TEST(DesiredReplicas, FollowsSaturationWithoutAThroughputFigure) {
  // 4 endpoints at 0.9 saturation, target 0.6: 6 endpoints bring it to 0.6.
  EXPECT_EQ(DesiredReplicas(Config(0, 0.6), 12345, 0.9, 4, 4, false), 6u);
  // Idle pool: the minimum.
  EXPECT_EQ(DesiredReplicas(Config(0, 0.6, 2), 0, 0.0, 4, 4, false), 2u);
}

TEST(DesiredReplicas, QueueInTheGatewayAsksForOneMore) {
  EXPECT_EQ(DesiredReplicas(Config(0), 0, 0.5, 3, 3, true), 4u);
}

TEST(DesiredReplicas, BoundedByMinAndMax) {
  EXPECT_EQ(DesiredReplicas(Config(100, 0.5, 1, 8), 100000, 1.0, 4, 4, true), 8u);
  EXPECT_EQ(DesiredReplicas(Config(0, 0.5, 3, 8), 0, 0.0, 0, 0, false), 3u);
}

TEST(DesiredReplicas, CountsCapacityNotEndpoints) {
  // Two endpoints of capacity 2.0 (4.0 in all) fully saturated at target 1.0: 4 units.
  EXPECT_EQ(DesiredReplicas(Config(0, 1.0), 0, 1.0, 4.0, 2, false), 4u);
}

}  // namespace
}  // namespace tokenway
