// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <string>
#include <string_view>

namespace talker::text {

// What a TTS engine should say of one chunk of an LLM's Markdown reply (a
// sentence or a line, as SentenceChunker cuts it): emphasis marks (** __ ~~,
// *word*, _word_ but not snake_case), heading marks, list and quote marks at
// the start of a line, code fences and backticks, link and image syntax (the
// text stays, the URL goes), and emoji (pictographs, dingbats, flags,
// variation selectors, joiners, keycaps) are removed; spaces are collapsed.
// The subtitles keep the original text.
std::string speakable(std::string_view markdown);

}  // namespace talker::text
