// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/text/sentence_chunker.h"

#include <cctype>

namespace talker::text {
namespace {

// Decodes the code point at text[i]; `len` is its byte length (0 when the
// sequence is incomplete at the end of the text).
char32_t decode(std::string_view text, size_t i, size_t &len) {
  const auto b = static_cast<unsigned char>(text[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
  if (i + n > text.size()) {
    len = 0;
    return 0;
  }
  len = n;
  if (n == 1) return b;
  char32_t cp = b & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = cp << 6 | (static_cast<unsigned char>(text[i + k]) & 0x3F);
  return cp;
}

bool is_ascii_mark(char32_t c) {
  return c == ',' || c == '.' || c == '!' || c == '?' || c == ';' || c == ':';
}
bool is_wide_mark(char32_t c) {
  return c == U'，' || c == U'。' || c == U'！' || c == U'？' || c == U'；' || c == U'：';
}
bool is_closing(char32_t c) {
  return c == '"' || c == '\'' || c == ')' || c == ']' || c == U'”' || c == U'’' || c == U'」' ||
         c == U'』' || c == U'）';
}
bool is_space(char32_t c) {
  return c == ' ' || c == '\t' || c == '\r' || c == U'\u3000';
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// Anything an engine would pronounce: a letter or digit, or any non-ASCII
// character that is not one of the marks or a closing quote.
bool has_speech(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t len;
    const char32_t c = decode(s, i, len);
    if (len == 0) break;
    if (c < 0x80 ? std::isalnum(int(c)) != 0
                 : !is_wide_mark(c) && !is_closing(c) && c != U'\u3000' && c != U'…' && c != U'、')
      return true;
    i += len;
  }
  return false;
}

}  // namespace

std::string make_valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && i + n <= text.size();
    for (size_t k = 1; ok && k < n; ++k)
      ok = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    // Well-formed sequences only (Unicode table 3-7, RFC 3629): no overlong
    // forms, no UTF-16 surrogates (ED A0..BF), nothing above U+10FFFF.
    if (ok && n == 2) ok = b >= 0xC2;
    if (ok && n >= 3) {
      const auto second = static_cast<unsigned char>(text[i + 1]);
      if (b == 0xE0) ok = second >= 0xA0;
      if (b == 0xED) ok = second < 0xA0;
      if (b == 0xF0) ok = second >= 0x90;
      if (b == 0xF4) ok = second < 0x90;
      if (b > 0xF4) ok = false;
    }
    if (ok) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

size_t utf8_length(std::string_view text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

std::vector<std::string> SentenceChunker::push(std::string_view text) {
  pending_.append(text);
  std::vector<std::string> out;
  split(false, out);
  return out;
}

std::vector<std::string> SentenceChunker::flush() {
  std::vector<std::string> out;
  split(true, out);
  std::string rest = trim(pending_);
  pending_.clear();
  if (has_speech(rest)) out.push_back(make_valid_utf8(rest));
  return out;
}

void SentenceChunker::split(bool at_end, std::vector<std::string> &out) {
  size_t start = 0;  // byte where the current chunk begins
  size_t i = 0;
  char32_t previous = 0;
  while (i < pending_.size()) {
    size_t len;
    const char32_t c = decode(pending_, i, len);
    if (len == 0) break;  // an incomplete UTF-8 sequence: wait for its rest
    size_t end = 0;       // chunk end (exclusive) when this character closes one
    bool hard = false;
    if (c == '\n') {
      end = i + 1;
      hard = true;
    } else if (is_wide_mark(c) || is_ascii_mark(c)) {
      size_t j = i + len;
      // Closing quotes and brackets belong to the sentence they close.
      for (;;) {
        if (j >= pending_.size()) break;
        size_t l2;
        const char32_t d = decode(pending_, j, l2);
        if (l2 == 0 || !is_closing(d)) break;
        j += l2;
      }
      if (is_ascii_mark(c)) {
        // An ASCII mark splits only before a space or the end: not in 3.14 or e-mail
        // addresses. With the next character unknown yet, wait for it.
        if (j >= pending_.size()) {
          if (!at_end) break;
          end = j;
        } else {
          size_t l2;
          const char32_t next = decode(pending_, j, l2);
          if (l2 == 0) break;
          const bool between_digits = std::isdigit(int(previous & 0x7F)) && previous < 0x80 &&
                                      next < 0x80 && std::isdigit(int(next));
          if (!between_digits && (is_space(next) || next == '\n' || next >= 0x80)) end = j;
        }
      } else {
        end = j;
      }
    }
    if (end) {
      std::string chunk = trim(std::string_view(pending_).substr(start, end - start));
      if (hard || utf8_length(chunk) >= min_chars_) {
        if (has_speech(chunk)) out.push_back(make_valid_utf8(chunk));
        start = end;
      }
      i = end;
      previous = 0;
      continue;
    }
    previous = c;
    i += len;
  }
  pending_.erase(0, start);
}

}  // namespace talker::text
