#include "payload/pattern_prefix.h"

#include <cctype>
#include <memory>
#include <vector>

#include "payload/text_normalizer.h"

namespace tokenway {

namespace {

// A parsed pattern: only the structure the prefix construction needs; atoms keep their source.
struct Node {
  enum class Kind { kZeroWidth, kAtom, kConcat, kAlternation, kRepeat };
  Kind kind = Kind::kConcat;
  std::string atom;  // kAtom: RE2 syntax matching one character
  std::vector<std::unique_ptr<Node>> children;
  int min = 0;
  int max = -1;  // kRepeat: -1 is unbounded
};
using NodePtr = std::unique_ptr<Node>;

NodePtr Make(Node::Kind kind, std::string atom = {}) {
  auto n = std::make_unique<Node>();
  n->kind = kind;
  n->atom = std::move(atom);
  return n;
}

class Parser {
 public:
  explicit Parser(std::string_view p) : p_(p) {}

  // The whole pattern, or null when it uses syntax the construction does not follow.
  NodePtr ParseAll() {
    NodePtr n = Alternation();
    if (!n || at_ != p_.size()) return nullptr;
    return n;
  }

 private:
  bool More() const { return at_ < p_.size(); }
  char Peek() const { return p_[at_]; }

  NodePtr Alternation() {
    auto alt = Make(Node::Kind::kAlternation);
    for (;;) {
      NodePtr c = Concat();
      if (!c) return nullptr;
      alt->children.push_back(std::move(c));
      if (More() && Peek() == '|') {
        ++at_;
        continue;
      }
      break;
    }
    if (alt->children.size() == 1) return std::move(alt->children[0]);
    return alt;
  }

  NodePtr Concat() {
    auto cat = Make(Node::Kind::kConcat);
    while (More() && Peek() != '|' && Peek() != ')') {
      NodePtr a = Atom();
      if (!a) return nullptr;
      if (a->kind == Node::Kind::kConcat && a->children.empty()) continue;  // \Q\E, (?i)
      for (;;) {
        int min = 0, max = -1;
        if (!Quantifier(min, max)) break;
        if (More() && Peek() == '?') ++at_;  // non-greedy: the same strings
        auto r = Make(Node::Kind::kRepeat);
        r->min = min;
        r->max = max;
        r->children.push_back(std::move(a));
        a = std::move(r);
      }
      cat->children.push_back(std::move(a));
    }
    return cat;
  }

  bool Quantifier(int& min, int& max) {
    if (!More()) return false;
    const char c = Peek();
    if (c == '*' || c == '+' || c == '?') {
      ++at_;
      min = c == '+' ? 1 : 0;
      max = c == '?' ? 1 : -1;
      return true;
    }
    if (c != '{') return false;
    // {n}, {n,}, {n,m}; anything else is a literal brace.
    size_t i = at_ + 1;
    auto number = [&](int& v) {
      const size_t start = i;
      v = 0;
      while (i < p_.size() && std::isdigit(static_cast<unsigned char>(p_[i])) && v <= 1000) {
        v = v * 10 + (p_[i++] - '0');
      }
      return i > start;
    };
    if (!number(min)) return false;
    max = min;
    if (i < p_.size() && p_[i] == ',') {
      ++i;
      if (!number(max)) max = -1;
    }
    if (i >= p_.size() || p_[i] != '}') return false;
    at_ = i + 1;
    return true;
  }

  // One character as a literal atom, escaped when it is an RE2 metacharacter (escaping a word
  // character such as '_' would be an error).
  static std::string Literal(std::string_view ch) {
    static constexpr std::string_view kMeta = "\\.+*?()|[]{}^$";
    if (ch.size() == 1 && kMeta.find(ch[0]) != std::string_view::npos) {
      return "\\" + std::string(ch);
    }
    return std::string(ch);
  }

  std::string_view Char() {
    const size_t n =
        std::min(Utf8SequenceLength(static_cast<unsigned char>(Peek())), p_.size() - at_);
    std::string_view ch = p_.substr(at_, n);
    at_ += n;
    return ch;
  }

  NodePtr Atom() {
    const char c = Peek();
    if (c == '(') return Group();
    if (c == '[') return Class();
    if (c == '\\') return Escape();
    if (c == '^' || c == '$') {
      ++at_;
      return Make(Node::Kind::kZeroWidth);
    }
    if (c == '.') {
      ++at_;
      return Make(Node::Kind::kAtom, "(?s:.)");
    }
    if (c == '*' || c == '+' || c == '?') return nullptr;  // RE2 rejects these; be safe
    return Make(Node::Kind::kAtom, Literal(Char()));
  }

  NodePtr Group() {
    ++at_;  // (
    if (More() && Peek() == '?') {
      ++at_;
      if (More() && (Peek() == 'P' || Peek() == '<')) {
        const size_t close = p_.find('>', at_);
        if (close == std::string_view::npos) return nullptr;
        at_ = close + 1;
      } else {
        // Flags: (?flags) applies to the rest of the group, (?flags:X) to X. Case folding is on
        // for the whole prefix expression and `.` already matches a newline, so flags can go.
        while (More() && (std::isalpha(static_cast<unsigned char>(Peek())) || Peek() == '-')) {
          ++at_;
        }
        if (!More()) return nullptr;
        if (Peek() == ')') {
          ++at_;
          return Make(Node::Kind::kConcat);
        }
        if (Peek() != ':') return nullptr;
        ++at_;
      }
    }
    NodePtr inner = Alternation();
    if (!inner || !More() || Peek() != ')') return nullptr;
    ++at_;
    // A group stands for one unit: wrap it so a quantifier applies to all of it.
    auto cat = Make(Node::Kind::kConcat);
    cat->children.push_back(std::move(inner));
    return cat;
  }

  NodePtr Class() {
    const size_t start = at_;
    size_t i = at_ + 1;
    if (i < p_.size() && p_[i] == '^') ++i;
    if (i < p_.size() && p_[i] == ']') ++i;
    while (i < p_.size() && p_[i] != ']') {
      if (p_[i] == '[' && i + 1 < p_.size() && p_[i + 1] == ':') {
        const size_t close = p_.find(":]", i + 2);
        if (close == std::string_view::npos) return nullptr;
        i = close + 2;
      } else if (p_[i] == '\\') {
        i += 2;
        if (i - 1 < p_.size() && (p_[i - 1] == 'p' || p_[i - 1] == 'P' || p_[i - 1] == 'x') &&
            i < p_.size() && p_[i] == '{') {
          const size_t close = p_.find('}', i);
          if (close == std::string_view::npos) return nullptr;
          i = close + 1;
        }
      } else {
        ++i;
      }
    }
    if (i >= p_.size()) return nullptr;
    at_ = i + 1;
    return Make(Node::Kind::kAtom, std::string(p_.substr(start, at_ - start)));
  }

  NodePtr Escape() {
    const size_t start = at_;
    if (at_ + 1 >= p_.size()) return nullptr;
    const char e = p_[at_ + 1];
    at_ += 2;
    switch (e) {
      case 'b':
      case 'B':
      case 'A':
      case 'z':
        return Make(Node::Kind::kZeroWidth);
      case 'Q': {
        // \Q...\E: literal characters.
        auto cat = Make(Node::Kind::kConcat);
        const size_t end = p_.find("\\E", at_);
        const size_t stop = end == std::string_view::npos ? p_.size() : end;
        while (at_ < stop) cat->children.push_back(Make(Node::Kind::kAtom, Literal(Char())));
        at_ = end == std::string_view::npos ? p_.size() : end + 2;
        return cat;
      }
      case 'p':
      case 'P':
      case 'x':
        if (at_ < p_.size() && p_[at_] == '{') {
          const size_t close = p_.find('}', at_);
          if (close == std::string_view::npos) return nullptr;
          at_ = close + 1;
        } else if (e == 'x') {
          at_ = std::min(at_ + 2, p_.size());
        } else {
          at_ = std::min(at_ + 1, p_.size());
        }
        break;
      default:
        if (e >= '0' && e <= '7') {
          for (int k = 0; k < 2 && at_ < p_.size() && p_[at_] >= '0' && p_[at_] <= '7'; ++k) {
            ++at_;
          }
        } else if (static_cast<unsigned char>(e) >= 0x80) {
          return nullptr;  // an escaped multi-byte character: RE2 rejects it
        }
        break;
    }
    return Make(Node::Kind::kAtom, std::string(p_.substr(start, at_ - start)));
  }

  std::string_view p_;
  size_t at_ = 0;
};

std::string Repeat(int min, int max) {
  if (min == 0 && max == -1) return "*";
  if (min == 1 && max == -1) return "+";
  if (min == 0 && max == 1) return "?";
  if (max == -1) return "{" + std::to_string(min) + ",}";
  if (min == max) return "{" + std::to_string(min) + "}";
  return "{" + std::to_string(min) + "," + std::to_string(max) + "}";
}

class Writer {
 public:
  explicit Writer(size_t max_size) : max_size_(max_size) {}
  bool too_big() const { return too_big_; }

  // Every string the node matches.
  std::string Full(const Node& n) {
    if (Over()) return {};
    switch (n.kind) {
      case Node::Kind::kZeroWidth:
        return {};
      case Node::Kind::kAtom:
        return n.atom;
      case Node::Kind::kConcat: {
        std::string out;
        for (const auto& c : n.children) out += Full(*c);
        return Check(std::move(out));
      }
      case Node::Kind::kAlternation: {
        std::string out = "(?:";
        for (size_t i = 0; i < n.children.size(); ++i) {
          if (i > 0) out += '|';
          out += Full(*n.children[i]);
        }
        return Check(out + ")");
      }
      case Node::Kind::kRepeat:
        if (n.max == 0) return {};
        return Check("(?:" + Full(*n.children[0]) + ")" + Repeat(n.min, n.max));
    }
    return {};
  }

  // Every prefix of every string the node matches (the empty one included).
  std::string Prefix(const Node& n) {
    if (Over()) return {};
    switch (n.kind) {
      case Node::Kind::kZeroWidth:
        return {};
      case Node::Kind::kAtom:
        return "(?:" + n.atom + ")?";
      case Node::Kind::kConcat:
        return Check(ConcatPrefix(n, 0));
      case Node::Kind::kAlternation: {
        std::string out = "(?:";
        for (size_t i = 0; i < n.children.size(); ++i) {
          if (i > 0) out += '|';
          out += Prefix(*n.children[i]);
        }
        return Check(out + ")");
      }
      case Node::Kind::kRepeat: {
        if (n.max == 0) return {};
        // X{min,max}: whole repetitions, fewer than max of them, then a prefix of one more.
        std::string out;
        if (n.max != 1) {
          out = "(?:" + Full(*n.children[0]) + ")" + Repeat(0, n.max == -1 ? -1 : n.max - 1);
        }
        return Check(out + Prefix(*n.children[0]));
      }
    }
    return {};
  }

 private:
  // Prefixes of children[i..]: a prefix of children[i], or all of it and a prefix of the rest.
  std::string ConcatPrefix(const Node& n, size_t i) {
    while (i < n.children.size() && n.children[i]->kind == Node::Kind::kZeroWidth) ++i;
    if (i == n.children.size() || Over()) return {};
    const Node& c = *n.children[i];
    std::string rest = ConcatPrefix(n, i + 1);
    if (rest.empty()) return Prefix(c);
    return Check("(?:" + Prefix(c) + "|" + Full(c) + rest + ")");
  }
  bool Over() const { return too_big_; }
  std::string Check(std::string s) {
    if (s.size() > max_size_) too_big_ = true;
    return s;
  }
  size_t max_size_;
  bool too_big_ = false;
};

}  // namespace

bool PatternPrefix(std::string_view pattern, std::string& out, size_t max_size) {
  NodePtr root = Parser(pattern).ParseAll();
  if (!root) return false;
  Writer w(max_size);
  out = w.Prefix(*root);
  return !w.too_big();
}

}  // namespace tokenway
