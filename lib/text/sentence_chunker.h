// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace talker::text {

// Splits text into chunks a TTS engine speaks one at a time, so a long reply
// starts playing after its first sentence. A chunk ends at one of
// , . ! ? ; : ， 。 ！ ？ ； ： once it holds at least `min_chars` characters
// (shorter pieces join the next one, as LiveTalking does), and always at a
// line break. ASCII marks between digits (3.14, 1,000, 10:30) do not split.
// Text may arrive in arbitrary pieces (LLM tokens): push() returns the chunks
// completed so far, flush() the rest. Chunks are trimmed; chunks without
// anything to say (only punctuation or spaces) are dropped.
class SentenceChunker {
 public:
  explicit SentenceChunker(size_t min_chars = 10) : min_chars_(min_chars) {}

  std::vector<std::string> push(std::string_view text);
  std::vector<std::string> flush();
  void clear() { pending_.clear(); }
  void set_min_chars(size_t n) { min_chars_ = n; }

 private:
  void split(bool at_end, std::vector<std::string> &out);

  size_t min_chars_;
  std::string pending_;  // text not yet in a chunk (always whole UTF-8 sequences at the front)
};

// `text` with each byte that is not part of a valid UTF-8 sequence replaced
// by U+FFFD, so engines and JSON encoders never see broken text.
std::string make_valid_utf8(std::string_view text);

// Number of Unicode characters in UTF-8 text.
size_t utf8_length(std::string_view text);

}  // namespace talker::text
