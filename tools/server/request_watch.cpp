// SPDX-License-Identifier: LGPL-2.1-or-later
#include "tools/server/request_watch.h"

#include <string>
#include <vector>

namespace talker::server {

RequestWatch::RequestWatch(SoupServer *server, Limits limits,
                           std::function<std::size_t(const std::string &)> body_limit)
    : server_(server), limits_(limits), body_limit_(std::move(body_limit)) {
  started_handler_ = g_signal_connect(server_, "request-started", G_CALLBACK(on_started), this);
}

RequestWatch::~RequestWatch() {
  if (started_handler_) g_signal_handler_disconnect(server_, started_handler_);
  for (auto &[msg, r] : reading_) {
    g_signal_handlers_disconnect_by_data(msg, this);
    g_object_weak_unref(G_OBJECT(msg), on_gone, this);
  }
}

void RequestWatch::on_started(SoupServer *, SoupServerMessage *msg, gpointer data) {
  auto *self = static_cast<RequestWatch *>(data);
  Reading r;
  r.started_us = r.last_progress_us = g_get_monotonic_time();
  self->reading_[msg] = r;
  g_object_weak_ref(G_OBJECT(msg), on_gone, self);
  g_signal_connect(msg, "got-headers", G_CALLBACK(on_headers), self);
  g_signal_connect(msg, "got-chunk", G_CALLBACK(on_chunk), self);
  g_signal_connect(msg, "got-body", G_CALLBACK(on_body), self);
}

void RequestWatch::on_headers(SoupServerMessage *msg, gpointer data) {
  auto *self = static_cast<RequestWatch *>(data);
  auto it = self->reading_.find(msg);
  if (it == self->reading_.end()) return;
  Reading &r = it->second;
  r.headers_done = true;
  r.last_progress_us = g_get_monotonic_time();
  SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
  // Content-Length bodies are refused from the header (Api::on_early).
  r.chunked = soup_message_headers_get_encoding(h) == SOUP_ENCODING_CHUNKED;
  GUri *uri = soup_server_message_get_uri(msg);
  const char *path = uri ? g_uri_get_path(uri) : "/";
  r.limit = self->body_limit_(path && *path ? path : "/");
}

void RequestWatch::on_chunk(SoupServerMessage *msg, GBytes *chunk, gpointer data) {
  auto *self = static_cast<RequestWatch *>(data);
  auto it = self->reading_.find(msg);
  if (it == self->reading_.end()) return;
  Reading &r = it->second;
  r.last_progress_us = g_get_monotonic_time();
  r.bytes += g_bytes_get_size(chunk);
  if (!r.chunked || r.refused_us || r.bytes <= r.limit) return;
  // Over the limit: what was kept is dropped, the rest is read without being
  // kept, and the answer (413) goes out when the body ends, or the
  // connection closes after refused_drain_s.
  r.refused_us = r.last_progress_us;
  // Refused from its headers already (no token): that answer stands.
  if (soup_server_message_get_status(msg) != 0) return;
  SoupMessageBody *body = soup_server_message_get_request_body(msg);
  soup_message_body_set_accumulate(body, FALSE);
  soup_message_body_truncate(body);
  const std::string why =
      "{\"code\":-1,\"msg\":\"body: larger than " + std::to_string(r.limit) + " bytes\"}";
  soup_server_message_set_status(msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, nullptr);
  soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_COPY, why.data(),
                                   why.size());
}

void RequestWatch::on_body(SoupServerMessage *msg, gpointer data) {
  static_cast<RequestWatch *>(data)->forget(msg);
}

void RequestWatch::on_gone(gpointer data, GObject *msg) {
  // The message is being finalized: its handlers go with it.
  static_cast<RequestWatch *>(data)->reading_.erase(reinterpret_cast<SoupServerMessage *>(msg));
}

void RequestWatch::forget(SoupServerMessage *msg) {
  if (!reading_.erase(msg)) return;
  g_signal_handlers_disconnect_by_data(msg, this);
  g_object_weak_unref(G_OBJECT(msg), on_gone, this);
}

void RequestWatch::check() {
  const gint64 now = g_get_monotonic_time();
  std::vector<SoupServerMessage *> late;
  for (auto &[msg, r] : reading_) {
    const bool headers_late =
        !r.headers_done && now - r.started_us > gint64(limits_.header_timeout_s * 1e6);
    const bool body_stalled =
        r.headers_done && now - r.last_progress_us > gint64(limits_.body_timeout_s * 1e6);
    const bool drained_too_long =
        r.refused_us && now - r.refused_us > gint64(limits_.refused_drain_s * 1e6);
    if (headers_late || body_stalled || drained_too_long) late.push_back(msg);
  }
  for (SoupServerMessage *msg : late) {
    forget(msg);
    // Shut down, not closed: libsoup still owns the fd and sees the end of
    // the stream on its next read, then drops the connection as a client's.
    if (GSocket *socket = soup_server_message_get_socket(msg))
      g_socket_shutdown(socket, TRUE, TRUE, nullptr);
  }
}

}  // namespace talker::server
