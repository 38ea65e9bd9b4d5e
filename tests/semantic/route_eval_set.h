// The labelled evaluation set of the semantic router: five routes (code, math, translation,
// summarisation, chit-chat) with the examples and keywords a configuration would give them, and
// a deterministic set of prompts generated from templates and fillers that are not among the
// examples (paraphrases, other topics, other languages), for accuracy and the confusion matrix.
#pragma once

#include <string>
#include <vector>

#include "semantic/route_classifier.h"

namespace tokenway::semantic::testing {

struct LabelledPrompt {
  std::string text;
  int route = 0;
};

// The routes with their training examples and keywords.
std::vector<RouteExamples> EvalRoutes();
// At least 100 prompts per route, the same on every run.
std::vector<LabelledPrompt> EvalSet();

}  // namespace tokenway::semantic::testing
