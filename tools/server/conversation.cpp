// SPDX-License-Identifier: LGPL-2.1-or-later
#include "tools/server/conversation.h"

#include "lib/text/sentence_chunker.h"
#include "lib/text/speakable.h"

namespace talker::server {

Conversation::Conversation(ConversationSettings settings, Speak speak,
                           std::function<void(const std::string &)> warn)
    : settings_(std::move(settings)), speak_(std::move(speak)), warn_(std::move(warn)) {}

Conversation::~Conversation() {
  cancel();
  join();
}

void Conversation::cancel() {
  std::lock_guard<std::mutex> l(lock_);
  stopped_ = true;
  if (client_) client_->cancel();
}

void Conversation::join() {
  if (worker_.joinable()) worker_.join();
}

void Conversation::ask(const std::string &text) {
  cancel();
  join();  // the cancelled reply returns at once: its connection is closed
  std::vector<talker::net::ChatMessage> messages;
  auto client = std::make_shared<talker::net::ChatClient>(settings_.chat);
  {
    std::lock_guard<std::mutex> l(lock_);
    history_.push_back({"user", text});
    // Bounded: the oldest turns go first.
    while (history_.size() > 2 * std::size_t(settings_.max_turns) + 1)
      history_.erase(history_.begin());
    if (!settings_.system_prompt.empty()) messages.push_back({"system", settings_.system_prompt});
    messages.insert(messages.end(), history_.begin(), history_.end());
    client_ = client;
    stopped_ = false;
  }
  worker_ = std::thread([this, client, messages] {
    talker::text::SentenceChunker chunker;
    // Under lock_ (see cancel()); false once cancelled.
    auto say = [&](const std::vector<std::string> &chunks) {
      std::lock_guard<std::mutex> l(lock_);
      if (stopped_) return false;
      for (const auto &c : chunks) {
        const std::string words = talker::text::speakable(c);
        if (!words.empty()) speak_(words, c);
      }
      return true;
    };
    std::string reply;
    try {
      reply = client->stream(messages,
                             [&](const std::string &piece) { return say(chunker.push(piece)); });
      say(chunker.flush());
    } catch (const std::exception &e) {
      warn_(e.what());
    }
    std::lock_guard<std::mutex> l(lock_);
    if (!reply.empty()) history_.push_back({"assistant", stopped_ ? reply + " [cut off]" : reply});
  });
}

}  // namespace talker::server
