// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/net/http_client.h"

#include <libsoup/soup.h>

#include "lib/common/error.h"

namespace talker::net {
namespace {

struct GObjectUnref {
  void operator()(gpointer p) const { g_object_unref(p); }
};
template <typename T>
using GObjectPtr = std::unique_ptr<T, GObjectUnref>;

std::string take_error(GError *error) {
  std::string text = error ? error->message : "unknown error";
  if (error) g_error_free(error);
  return text;
}

}  // namespace

void check_http_url(const std::string &url, const std::string &what) {
  GUri *uri = g_uri_parse(url.c_str(), G_URI_FLAGS_NONE, nullptr);
  const bool ok = uri &&
                  (g_strcmp0(g_uri_get_scheme(uri), "http") == 0 ||
                   g_strcmp0(g_uri_get_scheme(uri), "https") == 0) &&
                  g_uri_get_host(uri) && *g_uri_get_host(uri);
  if (uri) g_uri_unref(uri);
  if (!ok) throw Error(what + " '" + url + "' is not an http:// or https:// URL");
}

HttpClient::HttpClient(unsigned timeout_s) : timeout_s_(timeout_s) {}

HttpClient::~HttpClient() {
  if (session_) g_object_unref(session_);
}

void HttpClient::cancel() {
  std::lock_guard<std::mutex> lock(cancel_lock_);
  if (current_) g_cancellable_cancel(current_);
}

// A request in flight: its message and cancellable, registered for cancel()
// while it lives.
struct HttpClient::Exchange {
  Exchange(HttpClient *owner, SoupMessage *msg) : owner(owner), msg(msg) {}
  Exchange(const Exchange &) = delete;
  Exchange &operator=(const Exchange &) = delete;
  HttpClient *owner;
  GObjectPtr<SoupMessage> msg;
  GObjectPtr<GCancellable> cancellable{g_cancellable_new()};
  GObjectPtr<GInputStream> body;  // null when the request failed
  GError *error = nullptr;
  ~Exchange() {
    g_clear_error(&error);
    std::lock_guard<std::mutex> lock(owner->cancel_lock_);
    if (owner->current_ == cancellable.get()) owner->current_ = nullptr;
  }
};

std::unique_ptr<HttpClient::Exchange> HttpClient::start(const HttpRequest &request,
                                                        bool follow_redirects) {
  if (!session_)
    session_ =
        soup_session_new_with_options("timeout", timeout_s_, "user-agent", "gst-talker", nullptr);
  auto ex = std::make_unique<Exchange>(
      this, soup_message_new(request.method.c_str(), request.url.c_str()));
  SoupMessage *msg = ex->msg.get();
  if (!msg) throw Error("invalid URL '" + request.url + "'");
  if (!follow_redirects) soup_message_add_flags(msg, SOUP_MESSAGE_NO_REDIRECT);
  SoupMessageHeaders *headers = soup_message_get_request_headers(msg);
  for (const auto &[name, value] : request.headers)
    soup_message_headers_append(headers, name.c_str(), value.c_str());
  if (!request.form_fields.empty() || !request.form_files.empty()) {
    SoupMultipart *multipart = soup_multipart_new(SOUP_FORM_MIME_TYPE_MULTIPART);
    for (const auto &[name, value] : request.form_fields)
      soup_multipart_append_form_string(multipart, name.c_str(), value.c_str());
    for (const auto &file : request.form_files) {
      GBytes *data = g_bytes_new(file.data.data(), file.data.size());
      soup_multipart_append_form_file(multipart, file.field.c_str(), file.filename.c_str(),
                                      file.content_type.c_str(), data);
      g_bytes_unref(data);
    }
    GBytes *body = nullptr;
    soup_multipart_to_message(multipart, headers, &body);
    soup_message_set_request_body_from_bytes(msg, nullptr, body);
    g_bytes_unref(body);
    soup_multipart_free(multipart);
  } else if (!request.body.empty()) {
    GBytes *body = g_bytes_new(request.body.data(), request.body.size());
    soup_message_set_request_body_from_bytes(msg, request.content_type.c_str(), body);
    g_bytes_unref(body);
  }
  {
    std::lock_guard<std::mutex> lock(cancel_lock_);
    current_ = ex->cancellable.get();
  }
  ex->body.reset(soup_session_send(session_, msg, ex->cancellable.get(), &ex->error));
  return ex;
}

void HttpClient::send(const HttpRequest &request, const BodySink &on_body) {
  std::unique_ptr<Exchange> ex = start(request, true);
  SoupMessage *msg = ex->msg.get();
  GCancellable *cancellable = ex->cancellable.get();
  GInputStream *body = ex->body.get();
  if (!body) {
    if (g_cancellable_is_cancelled(cancellable)) return;
    GError *failure = ex->error;
    ex->error = nullptr;
    throw Error(request.url + ": " + take_error(failure));
  }
  GError *error = nullptr;
  const guint status = soup_message_get_status(msg);
  std::vector<uint8_t> buffer(16384);
  // The server's explanation, for the warning: the first 300 bytes.
  auto body_start = [&] {
    std::string text;
    gssize n;
    while (text.size() < 300 &&
           (n = g_input_stream_read(body, buffer.data(), buffer.size(), cancellable, nullptr)) > 0)
      text.append(reinterpret_cast<const char *>(buffer.data()), size_t(n));
    if (text.size() > 300) text.resize(300);
    return text;
  };
  if (status >= 400) {
    const std::string text = body_start();
    throw Error(request.url + ": HTTP " + std::to_string(status) + " " +
                (soup_message_get_reason_phrase(msg) ?: "") + (text.empty() ? "" : ": " + text));
  }
  const char *type =
      soup_message_headers_get_content_type(soup_message_get_response_headers(msg), nullptr);
  if (request.refuse_text && type &&
      (g_str_has_prefix(type, "text/") || g_str_has_suffix(type, "json"))) {
    const std::string text = body_start();
    throw Error(request.url + ": answered " + type + ", not audio: " + text);
  }
  uint64_t received = 0;
  for (;;) {
    const gssize n = g_input_stream_read(body, buffer.data(), buffer.size(), cancellable, &error);
    if (n == 0) break;
    if (n < 0) {
      if (g_cancellable_is_cancelled(cancellable)) {
        g_clear_error(&error);
        return;
      }
      throw Error(request.url + ": the response broke off: " + take_error(error));
    }
    received += uint64_t(n);
    if (!on_body(buffer.data(), size_t(n))) {
      g_cancellable_cancel(cancellable);
      return;
    }
  }
  g_input_stream_close(body, nullptr, nullptr);
  // libsoup reads a body cut short by the connection closing as a plain end
  // of stream; with a Content-Length that is caught here. (A chunked body
  // cut between chunks cannot be told from a finished one.)
  SoupMessageHeaders *response_headers = soup_message_get_response_headers(msg);
  if (soup_message_headers_get_encoding(response_headers) == SOUP_ENCODING_CONTENT_LENGTH) {
    const goffset expected = soup_message_headers_get_content_length(response_headers);
    if (received < uint64_t(expected))
      throw Error(request.url + ": the response broke off after " + std::to_string(received) +
                  " of " + std::to_string(expected) + " bytes");
  }
}

std::string HttpResponse::header(const std::string &lower_name) const {
  for (const auto &[name, value] : headers)
    if (name == lower_name) return value;
  return "";
}

std::vector<std::string> HttpResponse::header_values(const std::string &lower_name) const {
  std::vector<std::string> values;
  for (const auto &[name, value] : headers)
    if (name == lower_name) values.push_back(value);
  return values;
}

HttpResponse HttpClient::exchange(const HttpRequest &request, size_t max_body) {
  std::unique_ptr<Exchange> ex = start(request, false);
  if (!ex->body) {
    GError *error = ex->error;
    ex->error = nullptr;
    throw Error(request.url + ": " + take_error(error));
  }
  SoupMessage *msg = ex->msg.get();
  GInputStream *body = ex->body.get();
  GError *error = nullptr;
  HttpResponse response;
  response.status = soup_message_get_status(msg);
  response.reason = soup_message_get_reason_phrase(msg) ?: "";
  SoupMessageHeadersIter iter;
  soup_message_headers_iter_init(&iter, soup_message_get_response_headers(msg));
  const char *name, *value;
  while (soup_message_headers_iter_next(&iter, &name, &value)) {
    std::string lower(name);
    for (char &c : lower) c = char(g_ascii_tolower(c));
    response.headers.emplace_back(lower, value);
  }
  std::vector<char> buffer(16384);
  while (response.body.size() < max_body) {
    const gssize n =
        g_input_stream_read(body, buffer.data(), buffer.size(), ex->cancellable.get(), &error);
    if (n == 0) break;
    if (n < 0) throw Error(request.url + ": the response broke off: " + take_error(error));
    response.body.append(buffer.data(), size_t(n));
  }
  if (response.body.size() > max_body) response.body.resize(max_body);
  g_input_stream_close(body, nullptr, nullptr);
  return response;
}

}  // namespace talker::net
