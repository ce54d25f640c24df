// SPDX-License-Identifier: LGPL-2.1-or-later
// A session's conversation with an OpenAI-compatible LLM: /human type:chat
// sends the history and the new text, and the reply is spoken sentence by
// sentence as it streams in (Markdown and emoji left out of the speech).
// A new request or an interrupt cancels the one in flight: its connection is
// closed, and what had arrived stays in the history marked as cut off.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lib/net/chat_client.h"

namespace talker::server {

struct ConversationSettings {
  talker::net::ChatSettings chat;
  std::string system_prompt;
  unsigned max_turns = 8;  // user+assistant pairs kept
};

class Conversation {
 public:
  // `speak` queues a sentence for speech: the words to say (Markdown and
  // emoji left out) and the reply's text as written, for the subtitles.
  // `warn` reports an LLM failure.
  using Speak = std::function<void(const std::string &words, const std::string &written)>;
  Conversation(ConversationSettings settings, Speak speak,
               std::function<void(const std::string &)> warn);
  ~Conversation();
  // Starts answering `text` (cancelling a reply in flight).
  void ask(const std::string &text);
  // Cancels the reply in flight, if any; returns at once.
  void cancel();

 private:
  void join();
  const ConversationSettings settings_;
  const Speak speak_;
  const std::function<void(const std::string &)> warn_;
  // history_, client_, stopped_; held while a sentence is handed to speech,
  // so that nothing of a cancelled reply is spoken after cancel() returns.
  std::mutex lock_;
  std::vector<talker::net::ChatMessage> history_;
  std::shared_ptr<talker::net::ChatClient> client_;
  bool stopped_ = false;  // the reply in flight was cancelled
  std::thread worker_;
};

}  // namespace talker::server
