// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/text/speakable.h"

#include <cctype>
#include <cstdint>
#include <sstream>

namespace talker::text {
namespace {

bool is_emoji(std::uint32_t c) {
  return (c >= 0x1F000 && c <= 0x1FAFF) ||  // pictographs, emoticons, transport, flags
         (c >= 0x2600 && c <= 0x27BF) ||    // misc symbols, dingbats
         (c >= 0x2B00 && c <= 0x2BFF) ||    // stars, arrows used as emoji (⭐ ⬆)
         (c >= 0xFE00 && c <= 0xFE0F) ||    // variation selectors
         c == 0x200D || c == 0x20E3 ||      // zero-width joiner, keycap
         (c >= 0xE0020 && c <= 0xE007F);    // tag characters (subdivision flags)
}

// Removes emoji; keeps every other UTF-8 sequence as it is.
std::string without_emoji(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char b = s[i];
    const std::size_t n = b < 0x80         ? 1
                          : (b >> 5) == 6  ? 2
                          : (b >> 4) == 14 ? 3
                          : (b >> 3) == 30 ? 4
                                           : 1;
    if (i + n > s.size()) {
      out.append(s.substr(i));
      break;
    }
    std::uint32_t c = n == 1 ? b : b & (0xFF >> (n + 1));
    for (std::size_t k = 1; k < n; ++k)
      c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    if (!is_emoji(c)) out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

bool word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || (c & 0x80);
}

// Line-start marks: headings, quotes, list items.
std::string strip_line_start(std::string line) {
  std::size_t i = line.find_first_not_of(" \t");
  if (i == std::string::npos) return "";
  if (line.compare(i, 3, "```") == 0 || line.compare(i, 3, "~~~") == 0) return "";  // a fence
  while (i < line.size() && line[i] == '>') i = line.find_first_not_of(" \t", i + 1);
  if (i == std::string::npos) return "";
  std::size_t h = i;
  while (h < line.size() && line[h] == '#') ++h;
  if (h > i && h - i <= 6 && (h == line.size() || line[h] == ' '))
    i = line.find_first_not_of(' ', h);
  else if (i + 1 < line.size() && (line[i] == '-' || line[i] == '*' || line[i] == '+') &&
           line[i + 1] == ' ')
    i += 2;
  else {
    std::size_t d = i;
    while (d < line.size() && std::isdigit(static_cast<unsigned char>(line[d]))) ++d;
    if (d > i && d + 1 < line.size() && (line[d] == '.' || line[d] == ')') && line[d + 1] == ' ')
      i = d + 2;
  }
  return i == std::string::npos ? "" : line.substr(i);
}

std::string strip_inline(const std::string &s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    // ![alt](url) and [text](url): keep the text.
    if ((c == '[' || (c == '!' && i + 1 < s.size() && s[i + 1] == '['))) {
      const std::size_t open = c == '!' ? i + 1 : i;
      const std::size_t close = s.find(']', open);
      if (close != std::string::npos && close + 1 < s.size() && s[close + 1] == '(') {
        const std::size_t end = s.find(')', close);
        if (end != std::string::npos) {
          out += s.substr(open + 1, close - open - 1);
          i = end;
          continue;
        }
      }
    }
    if (c == '`') continue;
    if ((c == '*' || c == '_' || c == '~') && i + 1 < s.size() && s[i + 1] == c) {
      ++i;  // ** __ ~~
      continue;
    }
    if (c == '*') continue;  // a lone * is emphasis in a reply, not multiplication worth saying
    if (c == '_') {
      const bool inside = i > 0 && i + 1 < s.size() && word_char(s[i - 1]) && word_char(s[i + 1]);
      if (!inside) continue;  // _word_, not snake_case
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string speakable(std::string_view markdown) {
  std::istringstream lines{std::string(without_emoji(markdown))};
  std::string line, joined;
  while (std::getline(lines, line)) {
    line = strip_inline(strip_line_start(line));
    if (!joined.empty() && !line.empty()) joined += ' ';
    joined += line;
  }
  // Collapse runs of spaces and trim.
  std::string out;
  for (char c : joined) {
    if (c == ' ' || c == '\t' || c == '\r') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace talker::text
