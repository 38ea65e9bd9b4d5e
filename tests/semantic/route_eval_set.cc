#include "semantic/route_eval_set.h"

#include <cstdint>

namespace tokenway::semantic::testing {
namespace {

// Fills each template's "{}" with each filler in turn, skipping with a fixed stride so every
// route gets a spread of combinations.
void Expand(const std::vector<std::string>& templates, const std::vector<std::string>& fillers,
            int route, size_t want, std::vector<LabelledPrompt>& out) {
  size_t made = 0;
  uint64_t k = 0;
  while (made < want) {
    const std::string& t = templates[k % templates.size()];
    const std::string& f = fillers[(k * 7 + k / templates.size()) % fillers.size()];
    std::string text = t;
    const size_t at = text.find("{}");
    if (at != std::string::npos) text.replace(at, 2, f);
    out.push_back({std::move(text), route});
    ++made;
    ++k;
  }
}

}  // namespace

std::vector<RouteExamples> EvalRoutes() {
  return {
      {"code",
       {"Write a Python function that reverses a linked list.",
        "Why does my JavaScript code throw undefined is not a function?",
        "Fix the bug in this C++ loop: for (int i = 0; i <= v.size(); i++) sum += v[i];",
        "How do I read a CSV file in Go and parse each row into a struct?",
        "Refactor this Java class to use dependency injection.",
        "Write a SQL query that returns the ten customers with the most orders.",
        "Explain what this regular expression matches: ^[a-z0-9_-]{3,16}$",
        "Implement binary search in Rust and add unit tests.",
        "My Docker build fails with 'no such file or directory' when copying the config.",
        "Convert this callback-based Node.js function to async/await.",
        "What is the difference between a mutex and a semaphore in multithreaded programs?",
        "def add(a, b): return a + b  # why does add('1', 2) raise a TypeError?"},
       {"python", "javascript", "function", "compile error", "stack trace", "git", "api",
        "exception", "code", "bug"}},
      {"math",
       {"What is the derivative of x^3 * sin(x)?", "Solve the equation 3x + 7 = 22 for x.",
        "Compute the integral of 1/(1+x^2) from 0 to 1.",
        "Prove that the square root of 2 is irrational.",
        "What is the probability of getting two sixes when rolling two dice?",
        "Find the eigenvalues of the matrix [[2, 1], [1, 2]].",
        "How many ways can 5 people be seated around a round table?",
        "Simplify the expression (x^2 - 9) / (x - 3).",
        "What is the sum of the first 100 positive integers?",
        "Calculate the area of a circle with a radius of 4 cm.",
        "Is 221 a prime number? Show the factorisation.",
        "Find the limit of (1 + 1/n)^n as n goes to infinity."},
       {"equation", "integral", "derivative", "probability", "theorem", "matrix", "solve for",
        "calculate", "prime", "geometry"}},
      {"translation",
       {"Translate 'good morning, how are you?' into Spanish.",
        "How do you say 'where is the train station' in German?",
        "Translate this paragraph from French to English: Je voudrais réserver une table pour "
        "deux.",
        "What does 'arigatou gozaimasu' mean in English?",
        "Please translate the following email into Italian.",
        "Render this sentence in Portuguese: the meeting is postponed until Friday.",
        "Translate to Japanese: thank you for your help.",
        "Give me the Dutch translation of 'I would like a cup of coffee'.",
        "How would a native speaker say 'nice to meet you' in Korean?",
        "Translate 'the invoice is attached' into formal Chinese.",
        "What is the English meaning of the German word 'Fernweh'?",
        "Übersetze bitte ins Englische: Wir sehen uns morgen."},
       {"translate", "translation", "in spanish", "in french", "in german", "into english",
        "language", "how do you say"}},
      {"summarisation",
       {"Summarise the following article in three bullet points.",
        "Give me a short summary of this meeting transcript.", "TL;DR of the text below, please.",
        "Condense this report into one paragraph.", "What are the key points of this blog post?",
        "Write an executive summary of the attached quarterly results.",
        "Summarize this research paper abstract for a non-expert.",
        "Boil this long email thread down to the decisions that were made.",
        "Create a brief overview of the chapter below.",
        "Extract the main takeaways from this podcast transcript.",
        "Shorten this press release to fifty words.",
        "Recap the discussion above in a few sentences."},
       {"summarise", "summarize", "summary", "tl;dr", "key points", "condense", "recap",
        "main takeaways"}},
      {"chit-chat",
       {"Hi! How is your day going?", "Tell me a joke about cats.",
        "What is your favourite movie and why?", "I'm bored, any ideas for what to do tonight?",
        "Good morning! Did you sleep well?", "What do you think about pineapple on pizza?",
        "Can you recommend a good book for the weekend?", "I just got a puppy, any name ideas?",
        "How are you feeling today?", "Let's chat about travelling. Where would you go?",
        "Do you like music? What kind?", "Thanks, you've been really nice to talk to!"},
       {"hello", "hi", "how are you", "joke", "chat", "favourite", "bored", "weekend"}},
  };
}

std::vector<LabelledPrompt> EvalSet() {
  std::vector<LabelledPrompt> out;
  Expand({"Can you write a {} that parses JSON and handles errors?",
          "I get a segmentation fault in my {} when the input is empty, how do I debug it?",
          "Show me how to write unit tests for a {} that talks to a database.",
          "Optimise this {}: it loops over the array twice and allocates a new list every time.",
          "What's the idiomatic way to implement a {} with generics?",
          "Review my {} and point out memory leaks or race conditions.",
          "My {} compiles but the function returns null instead of the expected object.",
          "Write a script with a {} that downloads a file over HTTP and retries on failure.",
          "How should I structure the classes and methods of a {}?",
          "Add error handling and logging to this {}: try { run(); } catch (e) {}"},
         {"Python function", "Go program", "TypeScript module", "C++ class", "Rust crate",
          "Java service", "Bash script", "Kotlin app", "React component", "SQL stored procedure",
          "Node.js server", "C# method", "PHP controller"},
         0, 110, out);
  Expand(
      {"Find all real solutions of {}.", "Differentiate {} with respect to x.",
       "Integrate {} over the interval from 0 to 2.", "Evaluate {} at x = 3 and simplify.",
       "Factor the polynomial {} completely.", "Plot {} and find its minimum value.",
       "Show step by step how to solve {} = 0.", "Is the function {} continuous everywhere?",
       "What is the second derivative of {}?", "Find the roots of {} using the quadratic formula."},
      {"x^2 - 5x + 6", "2x^3 - x", "e^(2x) + 1", "ln(x) / x", "x^4 - 16", "cos(x)^2", "sqrt(x + 1)",
       "3x^2 + 12x + 9", "x / (x^2 + 1)", "tan(x) - x", "5x - 20", "(x + 2)(x - 7)"},
      1, 110, out);
  Expand({"Could you translate '{}' into French?", "Translate this into Swedish: {}",
          "How would I say '{}' in Russian?", "Please put '{}' into Polish for me.",
          "What's '{}' in Turkish?", "Translate '{}' from English to Greek.",
          "I need '{}' translated into Vietnamese.", "Give me the Hindi for '{}'.",
          "Say '{}' in Arabic, please.", "Translate into Czech: '{}'"},
         {"the shop opens at nine", "my luggage is lost", "I am allergic to peanuts",
          "please call a doctor", "the contract expires next month", "we need more time",
          "happy birthday to my sister", "the weather is lovely today", "where can I buy tickets",
          "the printer is out of paper", "our flight was cancelled"},
         2, 110, out);
  Expand(
      {"Please summarise this {} for me.", "Give me the gist of the following {}.",
       "Can you sum up this {} in two sentences?", "I don't have time to read this {}: key points?",
       "Write a one-paragraph summary of the {} below.", "Condense the {} into five bullets.",
       "What are the main conclusions of this {}?", "Make a TL;DR for this {}.",
       "Briefly recap the {} that follows.", "Shorten this {} to its essentials."},
      {"news article", "board meeting minutes", "customer support ticket", "legal contract",
       "scientific paper", "product review", "lecture transcript", "project status report",
       "Slack conversation", "book chapter", "earnings call transcript", "policy document"},
      3, 110, out);
  Expand({"Hey there, {}", "Hello! {}", "Just wanted to say hi. {}", "Good evening :) {}",
          "Hi friend, {}", "Yo! {}", "Hey, quick question: {}", "Morning! {}", "Hiya, {}",
          "Hello again, {}"},
         {"how was your weekend?", "what's your favourite food?", "tell me something funny.",
          "do you have any hobbies?", "I'm feeling a bit lonely today.",
          "what should I watch on TV tonight?", "do you prefer cats or dogs?",
          "any fun plans for the holidays?", "what's the best pizza topping?",
          "can you cheer me up?", "I finally finished my exams!", "guess what I had for lunch."},
         4, 110, out);
  return out;
}

}  // namespace tokenway::semantic::testing
