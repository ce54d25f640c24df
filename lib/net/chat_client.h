// SPDX-License-Identifier: LGPL-2.1-or-later
// An OpenAI-compatible streaming chat client: POST {base}/chat/completions
// with stream:true, read the server-sent events as they arrive, hand each
// piece of the reply to the caller. cancel() from another thread closes the
// connection (the server sees the client go), it is not read to the end.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lib/net/http_client.h"

namespace talker::net {

struct ChatMessage {
  std::string role;  // system, user, assistant
  std::string content;
};

struct ChatSettings {
  std::string
      base_url;  // e.g. http://127.0.0.1:11434/v1 (a trailing /chat/completions is accepted)
  std::string model;
  std::string api_key;  // Bearer; none when empty
  unsigned timeout_s = 60;
};

// Server-sent events, fed in arbitrary pieces: calls on_event(event, data)
// for each complete event (data lines joined by '\n'; event "message" when
// none is named). Comments and unknown fields are skipped.
class SseParser {
 public:
  using Handler = std::function<void(const std::string &event, const std::string &data)>;
  void feed(const char *bytes, std::size_t size, const Handler &on_event);

 private:
  void line(std::string text, const Handler &on_event);
  std::string pending_, event_, data_;
  bool has_data_ = false;
};

class ChatClient {
 public:
  explicit ChatClient(ChatSettings settings);
  // Sends the conversation and streams the reply: `on_delta` gets each piece
  // of text; returning false stops reading (and closes the connection).
  // Returns the whole reply received. Throws talker::Error naming the URL
  // and cause (refused, timeout, HTTP status with the server's message, an
  // error event in the stream). After cancel() it returns what had arrived.
  std::string stream(const std::vector<ChatMessage> &messages,
                     const std::function<bool(const std::string &)> &on_delta);
  void cancel();
  const std::string &url() const { return url_; }

 private:
  ChatSettings settings_;
  std::string url_;
  HttpClient http_;
};

}  // namespace talker::net
