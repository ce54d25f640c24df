// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/net/chat_client.h"

#include <atomic>
#include <nlohmann/json.hpp>

#include "lib/common/error.h"

namespace talker::net {

void SseParser::feed(const char *bytes, std::size_t size, const Handler &on_event) {
  pending_.append(bytes, size);
  std::size_t start = 0;
  for (;;) {
    const std::size_t nl = pending_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string text = pending_.substr(start, nl - start);
    if (!text.empty() && text.back() == '\r') text.pop_back();
    line(std::move(text), on_event);
    start = nl + 1;
  }
  pending_.erase(0, start);
}

void SseParser::line(std::string text, const Handler &on_event) {
  if (text.empty()) {  // the end of an event
    if (has_data_) on_event(event_.empty() ? "message" : event_, data_);
    event_.clear();
    data_.clear();
    has_data_ = false;
    return;
  }
  if (text[0] == ':') return;  // a comment (keep-alive)
  const std::size_t colon = text.find(':');
  const std::string field = text.substr(0, colon);
  std::string value = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (!value.empty() && value[0] == ' ') value.erase(0, 1);
  if (field == "data") {
    if (has_data_) data_ += '\n';
    data_ += value;
    has_data_ = true;
  } else if (field == "event") {
    event_ = value;
  }
}

namespace {

std::string completions_url(std::string base) {
  check_http_url(base, "LLM URL");
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string tail = "/chat/completions";
  if (base.size() >= tail.size() && base.compare(base.size() - tail.size(), tail.size(), tail) == 0)
    return base;
  return base + tail;
}

}  // namespace

ChatClient::ChatClient(ChatSettings settings)
    : settings_(std::move(settings)),
      url_(completions_url(settings_.base_url)),
      http_(settings_.timeout_s) {}

void ChatClient::cancel() {
  http_.cancel();
}

std::string ChatClient::stream(const std::vector<ChatMessage> &messages,
                               const std::function<bool(const std::string &)> &on_delta) {
  nlohmann::json body{
      {"model", settings_.model}, {"stream", true}, {"messages", nlohmann::json::array()}};
  for (const auto &m : messages)
    body["messages"].push_back({{"role", m.role}, {"content", m.content}});
  HttpRequest request;
  request.url = url_;
  request.content_type = "application/json";
  request.body = body.dump();
  request.headers.emplace_back("Accept", "text/event-stream");
  if (!settings_.api_key.empty())
    request.headers.emplace_back("Authorization", "Bearer " + settings_.api_key);

  std::string reply, failure;
  bool done = false, stopped = false;
  SseParser parser;
  http_.send(request, [&](const uint8_t *data, size_t size) {
    parser.feed(reinterpret_cast<const char *>(data), size,
                [&](const std::string &, const std::string &payload) {
                  if (done || stopped || !failure.empty()) return;
                  if (payload == "[DONE]") {
                    done = true;
                    return;
                  }
                  nlohmann::json j = nlohmann::json::parse(payload, nullptr, false);
                  if (j.is_discarded()) return;  // not JSON: skipped, as the OpenAI clients do
                  if (j.contains("error")) {
                    failure = j["error"].is_object()
                                  ? j["error"].value("message", j["error"].dump())
                                  : j["error"].dump();
                    return;
                  }
                  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty())
                    return;
                  const auto &choice = j["choices"][0];
                  if (!choice.contains("delta") || !choice["delta"].contains("content") ||
                      !choice["delta"]["content"].is_string())
                    return;
                  const std::string piece = choice["delta"]["content"].get<std::string>();
                  if (piece.empty()) return;
                  reply += piece;
                  if (!on_delta(piece)) stopped = true;
                });
    return !(done || stopped || !failure.empty());
  });
  if (!failure.empty()) throw Error(url_ + ": the LLM answered with an error: " + failure);
  return reply;
}

}  // namespace talker::net
