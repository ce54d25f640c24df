// SPDX-License-Identifier: LGPL-2.1-or-later
#include "tools/server/api.h"

#include <malloc.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "tools/server/audio_upload.h"
#include "page.h"  // kIndexHtml, generated from web/index.html by embed.sh

namespace talker::server {
namespace {

// Connections waiting to be accepted (a burst of offers or page loads).
constexpr int kListenBacklog = 256;

using json = nlohmann::json;

// Runs `work` on the main context.
void on_main(std::function<void()> work) {
  auto *heap = new std::function<void()>(std::move(work));
  g_main_context_invoke_full(
      nullptr, G_PRIORITY_DEFAULT,
      +[](gpointer data) -> gboolean {
        (*static_cast<std::function<void()> *>(data))();
        return G_SOURCE_REMOVE;
      },
      heap, +[](gpointer data) { delete static_cast<std::function<void()> *>(data); });
}

void respond(SoupServerMessage *msg, unsigned status, const std::string &type,
             const std::string &body) {
  soup_server_message_set_status(msg, status, nullptr);
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  soup_message_headers_replace(h, "Cache-Control", "no-store");
  soup_server_message_set_response(msg, type.c_str(), SOUP_MEMORY_COPY, body.data(), body.size());
}

// JSON text whatever the strings hold: client text that is not valid UTF-8
// (a path, a field echoed in an error) is written with U+FFFD where nlohmann
// would throw and end the process.
std::string json_text(const json &j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// LiveTalking's shape: HTTP 200 with {code, msg, data?}.
void respond_json(SoupServerMessage *msg, const json &j, unsigned status = 200) {
  respond(msg, status, "application/json", json_text(j));
}
// Routes answered without the token: the page and the probes.
bool is_public_path(const std::string &path) {
  return path == "/" || path == "/index.html" || path == "/favicon.ico" || path == "/healthz" ||
         path == "/readyz";
}

void fail(SoupServerMessage *msg, const std::string &why, unsigned status = 200) {
  respond_json(msg, json{{"code", -1}, {"msg", why}}, status);
}

// Runs `work` on a thread of its own while `msg` waits (paused), then
// answers with what it returned, or {code:-1, msg} with what it threw.
void reply_later(SoupServerMessage *msg, std::function<json()> work) {
  soup_server_message_pause(msg);
  g_object_ref(msg);
  std::thread([msg, work = std::move(work)] {
    json reply;
    try {
      reply = work();
    } catch (const std::exception &e) {
      reply = json{{"code", -1}, {"msg", e.what()}};
    }
    on_main([msg, reply] {
      respond_json(msg, reply);
      soup_server_message_unpause(msg);
      g_object_unref(msg);
    });
  }).detach();
}

std::string body_of(SoupServerMessage *msg) {
  SoupMessageBody *body = soup_server_message_get_request_body(msg);
  GBytes *bytes = soup_message_body_flatten(body);
  gsize size = 0;
  const char *data = static_cast<const char *>(g_bytes_get_data(bytes, &size));
  std::string out(data ? data : "", size);
  g_bytes_unref(bytes);
  return out;
}

// "sessionid" as LiveTalking pages send it: a number, or a string of digits.
bool parse_session_id(const json &j, std::uint64_t *id, std::string *why) {
  auto it = j.find("sessionid");
  if (it == j.end()) {
    *why = "sessionid: missing";
    return false;
  }
  if (it->is_number_unsigned() || (it->is_number_integer() && it->get<std::int64_t>() >= 0)) {
    *id = it->get<std::uint64_t>();
    return true;
  }
  if (it->is_string()) {
    const std::string s = it->get<std::string>();
    if (!s.empty() && s.size() <= 20 && s.find_first_not_of("0123456789") == std::string::npos) {
      *id = std::stoull(s);
      return true;
    }
  }
  *why = "sessionid: must be a session id (a number or a string of digits)";
  return false;
}

// /human's `tts`: {voice?, speed?}. Empty, or the message naming the field.
std::string parse_voice(const json &t, talker::tts::VoiceOptions *voice) {
  if (!t.is_object()) return "tts: must be an object {voice?, speed?}";
  for (const auto &item : t.items())
    if (item.key() != "voice" && item.key() != "speed")
      return "tts: unknown key '" + item.key().substr(0, 32) + "' (voice, speed)";
  if (t.contains("voice")) {
    const json &v = t["voice"];
    if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 64)
      return "tts.voice: must be a voice name (1-64 bytes)";
    for (unsigned char c : v.get<std::string>())
      if (c < 0x20 || c == 0x7f) return "tts.voice: must be a voice name (no control characters)";
    voice->voice = v.get<std::string>();
  }
  if (t.contains("speed")) {
    if (!t["speed"].is_number()) return "tts.speed: must be a number";
    const double speed = t["speed"].get<double>();
    if (!(speed >= talker::tts::kMinSpeed && speed <= talker::tts::kMaxSpeed))
      return "tts.speed: must be in 0.5..2";
    voice->speed = speed;
  }
  return "";
}

bool parse_json(SoupServerMessage *msg, const std::string &body, json *out) {
  try {
    *out = json::parse(body);
  } catch (const json::exception &e) {
    fail(msg, std::string("body: not JSON (") + e.what() + ")");
    return false;
  }
  if (!out->is_object()) {
    fail(msg, "body: must be a JSON object");
    return false;
  }
  return true;
}

}  // namespace

namespace {

// The talker-avatar beside this program (build/tools/, or the install's bin/).
std::string builder_beside_me() {
  char *exe = g_file_read_link("/proc/self/exe", nullptr);
  std::string dir = ".";
  if (exe) {
    char *d = g_path_get_dirname(exe);
    dir = d;
    g_free(d);
    g_free(exe);
  }
  return dir + "/talker-avatar";
}

}  // namespace

Api::Api(Options options) : options_(std::move(options)), alive_(std::make_shared<bool>(true)) {
  if (options_.avatar_jobs > 0)
    avatar_jobs_ = std::make_unique<AvatarJobs>(
        options_.avatar_builder.empty() ? builder_beside_me() : options_.avatar_builder,
        options_.vae, options_.avatars, options_.avatar_jobs);
}

Api::~Api() {
  shutdown();
}

unsigned Api::listen() {
  GError *error = nullptr;
  if (!options_.tls_cert.empty()) {
    GTlsCertificate *cert = g_tls_certificate_new_from_files(options_.tls_cert.c_str(),
                                                             options_.tls_key.c_str(), &error);
    if (!cert) {
      const std::string msg = error->message;
      g_error_free(error);
      throw std::runtime_error("--tls-cert/--tls-key: " + msg);
    }
    server_ = soup_server_new("server-header", "talker-server", "tls-certificate", cert, nullptr);
    g_object_unref(cert);
  } else {
    server_ = soup_server_new("server-header", "talker-server", nullptr);
  }
  soup_server_add_early_handler(server_, nullptr, on_early, this, nullptr);
  soup_server_add_handler(server_, nullptr, on_request, this, nullptr);
  RequestWatch::Limits limits;
  limits.header_timeout_s = options_.header_timeout_s;
  limits.body_timeout_s = options_.body_timeout_s;
  request_watch_ = std::make_unique<RequestWatch>(
      server_, limits, [this](const std::string &path) { return body_limit(path); });

  const auto colon = options_.listen.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("--listen: expected HOST:PORT");
  std::string host = options_.listen.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const int port = std::atoi(options_.listen.substr(colon + 1).c_str());
  GInetAddress *inet = g_inet_address_new_from_string(host.c_str());
  if (!inet) throw std::runtime_error("--listen: '" + host + "' is not an IP address");
  GSocketAddress *address = g_inet_socket_address_new(inet, port);
  g_object_unref(inet);
  // Our own socket: soup_server_listen's GSocketListener queues only 10
  // connections, and a burst of offers (a page reloaded by many viewers)
  // got resets.
  GSocket *socket = g_socket_new(g_socket_address_get_family(address), G_SOCKET_TYPE_STREAM,
                                 G_SOCKET_PROTOCOL_TCP, &error);
  gboolean ok = socket != nullptr;
  if (ok) {
    g_socket_set_listen_backlog(socket, kListenBacklog);
    ok = g_socket_bind(socket, address, TRUE, &error) && g_socket_listen(socket, &error) &&
         soup_server_listen_socket(
             server_, socket,
             options_.tls_cert.empty() ? SoupServerListenOptions(0) : SOUP_SERVER_LISTEN_HTTPS,
             &error);
    g_object_unref(socket);
  }
  g_object_unref(address);
  if (!ok) {
    const std::string msg = error->message;
    g_error_free(error);
    throw std::runtime_error("cannot listen on " + options_.listen + ": " + msg);
  }
  unsigned bound = port;
  GSList *uris = soup_server_get_uris(server_);
  if (uris) bound = g_uri_get_port(static_cast<GUri *>(uris->data));
  g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
  tick_ = g_timeout_add(500, on_tick, this);
  return bound;
}

void Api::shutdown() {
  if (tick_) g_source_remove(tick_);
  tick_ = 0;
  *alive_ = false;
  std::vector<std::uint64_t> ids;
  for (auto &[id, s] : sessions_) ids.push_back(id);
  for (auto id : ids) end_session(id, "server shutting down");
  // Stopping pipelines run on their threads: wait for them here.
  while (stopping_ > 0 || starting_ > 0) g_main_context_iteration(nullptr, TRUE);
  request_watch_.reset();
  if (server_) {
    soup_server_disconnect(server_);
    g_object_unref(server_);
    server_ = nullptr;
  }
}

// Refuses a body over the limit before reading it.
void Api::on_early(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *,
                   gpointer data) {
  auto *self = static_cast<Api *>(data);
  SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
  // libsoup before 3.3 never closes an idle keep-alive connection whose
  // client closed it (its socket sits in CLOSE_WAIT, one fd each, until the
  // process runs out: upstream commit d20c6601, "Don't leak idle connections
  // closed by the client"). Debian 12 has 3.2: one request per connection.
  if (soup_get_major_version() == 3 && soup_get_minor_version() < 3)
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Connection",
                                 "close");
  // Refused from the headers alone: no token, or a declared length over the
  // limit. libsoup 3.2 still reads the body of such a request (it skips it
  // only for "Expect: 100-continue"), so it is read without being kept: a
  // client without the token cannot make the server hold 250 MB.
  SoupMessageBody *request_body = soup_server_message_get_request_body(msg);
  const bool preflight = g_str_equal(soup_server_message_get_method(msg), "OPTIONS");
  if (!preflight && !is_public_path(path ? path : "/") && !self->authorized(msg)) {
    soup_message_body_set_accumulate(request_body, FALSE);
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "WWW-Authenticate",
                                 "Bearer");
    return fail(msg, "unauthorized: a Bearer token is required", SOUP_STATUS_UNAUTHORIZED);
  }
  const std::size_t limit = self->body_limit(path ? path : "/");
  if (soup_message_headers_get_encoding(h) == SOUP_ENCODING_CONTENT_LENGTH &&
      soup_message_headers_get_content_length(h) > goffset(limit)) {
    soup_message_body_set_accumulate(request_body, FALSE);
    fail(msg, "body: larger than " + std::to_string(limit) + " bytes",
         SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE);
  }
}

std::size_t Api::body_limit(const std::string &path) const {
  if (path == "/humanaudio") return options_.max_upload;
  if (path == "/api/avatar/task") return options_.max_avatar_upload;
  return options_.max_body;
}

void Api::on_request(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *,
                     gpointer data) {
  auto *self = static_cast<Api *>(data);
  // One request's failure stays that request's: nothing thrown here may
  // reach libsoup's C frames and end every session.
  try {
    self->handle(msg, path ? path : "/");
  } catch (const std::exception &e) {
    g_printerr("request %s failed: %s\n", soup_server_message_get_method(msg), e.what());
    fail(msg, "internal error", SOUP_STATUS_INTERNAL_SERVER_ERROR);
  }
  // Method, path and status only: queries and bodies may hold session ids and text.
  if (const unsigned status = soup_server_message_get_status(msg))
    g_print("%s %s -> %u\n", soup_server_message_get_method(msg), path, status);
}

bool Api::authorized(SoupServerMessage *msg) {
  if (options_.token.empty()) return true;
  const char *auth =
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization");
  const std::string expected = "Bearer " + options_.token;
  // Constant time: the comparison does not tell how much of a guess was right.
  bool ok = auth && std::strlen(auth) == expected.size();
  unsigned char diff = 0;
  if (ok)
    for (std::size_t i = 0; i < expected.size(); ++i) diff |= auth[i] ^ expected[i];
  return ok && diff == 0;
}

void Api::add_cors(SoupServerMessage *msg) {
  const char *origin =
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Origin");
  if (!origin) return;
  for (const auto &allowed : options_.cors_origins)
    if (allowed == origin) {
      SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
      soup_message_headers_replace(h, "Access-Control-Allow-Origin", origin);
      soup_message_headers_replace(h, "Vary", "Origin");
      soup_message_headers_replace(h, "Access-Control-Allow-Headers",
                                   "Content-Type, Authorization");
      soup_message_headers_replace(h, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
      return;
    }
}

void Api::handle(SoupServerMessage *msg, const std::string &path) {
  const std::string method = soup_server_message_get_method(msg);
  add_cors(msg);
  // Refused from the headers alone (on_early): answered already.
  if (soup_server_message_get_status(msg) == SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE ||
      soup_server_message_get_status(msg) == SOUP_STATUS_UNAUTHORIZED)
    return;
  if (method == "OPTIONS") {
    soup_server_message_set_status(msg, SOUP_STATUS_NO_CONTENT, nullptr);
    return;
  }
  // The page is public (it asks for the token); everything else is the API.
  if (path == "/favicon.ico") {
    soup_server_message_set_status(msg, SOUP_STATUS_NO_CONTENT, nullptr);
    return;
  }
  // Probes for a load balancer or Kubernetes: public, and they say nothing
  // but whether this process lives and can take one more session.
  if (path == "/healthz") return respond(msg, 200, "text/plain", "ok\n");
  if (path == "/readyz") {
    const bool ready = sessions_.size() + starting_ < options_.max_sessions;
    return respond(msg, ready ? 200 : 503, "text/plain", ready ? "ready\n" : "full\n");
  }
  if (path == "/" || path == "/index.html") {
    if (method != "GET" && method != "HEAD") return fail(msg, "method not allowed", 405);
    SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
    soup_message_headers_replace(h, "Content-Security-Policy",
                                 "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                 "style-src 'self' 'unsafe-inline'; media-src 'self' blob:");
    return respond(msg, 200, "text/html; charset=utf-8", kIndexHtml);
  }
  if (!authorized(msg)) {
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "WWW-Authenticate",
                                 "Bearer");
    return fail(msg, "unauthorized: a Bearer token is required", SOUP_STATUS_UNAUTHORIZED);
  }
  const std::string body = body_of(msg);
  if (body.size() > body_limit(path))
    return fail(msg, "body: larger than " + std::to_string(body_limit(path)) + " bytes",
                SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE);
  using Route = void (Api::*)(SoupServerMessage *, const std::string &);
  static const std::map<std::string, Route> posts = {
      {"/offer", &Api::offer},
      {"/human", &Api::human},
      {"/humanaudio", &Api::humanaudio},
      {"/interrupt_talk", &Api::interrupt_talk},
      {"/record", &Api::record},
      {"/is_speaking", &Api::is_speaking},
      {"/push", &Api::push},
      {"/end_session", &Api::end_session_route},
      {"/set_audiotype", &Api::set_audiotype},
  };
  if (auto it = posts.find(path); it != posts.end()) {
    if (method != "POST") return fail(msg, "method not allowed: POST " + path, 405);
    return (this->*(it->second))(msg, body);
  }
  if (path.rfind("/record/", 0) == 0) {
    if (method != "GET" && method != "HEAD")
      return fail(msg, "method not allowed: GET " + path, 405);
    return recording_file(msg, path.substr(8));
  }
  if (path == "/api/avatar/task") {
    if (method != "POST") return fail(msg, "method not allowed: POST " + path, 405);
    return avatar_task_create(msg, body);
  }
  if (path == "/api/avatar/tasks") {
    if (method != "GET") return fail(msg, "method not allowed: GET " + path, 405);
    return avatar_tasks(msg);
  }
  if (path.rfind("/api/avatar/task/", 0) == 0) {
    if (method != "GET" && method != "DELETE")
      return fail(msg, "method not allowed: GET or DELETE " + path, 405);
    return avatar_task(msg, method, path.substr(17));
  }
  if (path == "/sse" || path == "/api/admin/sessions") {
    if (method != "GET") return fail(msg, "method not allowed: GET " + path, 405);
    return path == "/sse" ? sse(msg) : admin_sessions(msg);
  }
  fail(msg, "no such route: " + path, SOUP_STATUS_NOT_FOUND);
}

std::uint64_t Api::new_session_id() {
  // 53 random bits: LiveTalking's pages parseInt() the id, and JavaScript
  // numbers are exact to 2^53. Unguessable in practice; --token guards the rest.
  for (;;) {
    std::uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) throw std::runtime_error("getrandom failed");
    r &= (std::uint64_t(1) << 53) - 1;
    if (r < 1000000000ull || issued_ids_.count(r)) continue;
    issued_ids_.insert(r);
    return r;
  }
}

std::string Api::avatar_dir(const std::string &name, std::string *why) const {
  // A name, never a path: letters, digits, '_', '-', '.', not starting with '.'.
  if (name.empty() || name.size() > 64 || name[0] == '.' ||
      name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.") !=
          std::string::npos) {
    *why = "avatar: '" + name.substr(0, 64) + "' is not an avatar name";
    return "";
  }
  // The name is one path component, so the folder is directly inside
  // --avatars; symbolic links there are the administrator's, and followed.
  const std::string dir = options_.avatars + "/" + name;
  if (!g_file_test((dir + "/avatar.json").c_str(), G_FILE_TEST_IS_REGULAR)) {
    *why = "avatar: no avatar named '" + name + "'";
    return "";
  }
  std::string out = dir;
  return out;
}

std::shared_ptr<Session> Api::new_session(SoupServerMessage *msg, const json &j) {
  std::string name = options_.default_avatar;
  if (j.contains("avatar")) {
    if (!j["avatar"].is_string()) {
      fail(msg, "avatar: must be a string");
      return nullptr;
    }
    name = j["avatar"].get<std::string>();
  }
  std::string why;
  const std::string dir = avatar_dir(name, &why);
  if (dir.empty()) {
    fail(msg, why);
    return nullptr;
  }
  if (sessions_.size() + starting_ >= options_.max_sessions) {
    fail(msg, "max sessions reached (" + std::to_string(options_.max_sessions) + ")");
    return nullptr;
  }
  // A voice-cloning reference: a recording in --voices, by name (LiveTalking
  // takes a path on the server here; we never do).
  std::string ref_audio, ref_text;
  if (j.contains("refaudio")) {
    const std::string engine = options_.tts_engine;
    if (engine != "gpt-sovits" && engine != "cosyvoice") {
      fail(msg, "refaudio: the TTS engine '" + engine +
                    "' does not clone voices (gpt-sovits and cosyvoice do)");
      return nullptr;
    }
    if (options_.voices.empty()) {
      fail(msg, "refaudio: this server has no --voices folder");
      return nullptr;
    }
    const json &r = j["refaudio"];
    const std::string ref = r.is_string() ? r.get<std::string>() : "";
    if (ref.empty() || ref.size() > 64 || ref[0] == '.' ||
        ref.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.") !=
            std::string::npos) {
      fail(msg, "refaudio: must be the name of a recording in the server's voices folder");
      return nullptr;
    }
    ref_audio = options_.voices + "/" + ref;
    if (!g_file_test(ref_audio.c_str(), G_FILE_TEST_IS_REGULAR)) {
      fail(msg, "refaudio: no recording named '" + ref + "'");
      return nullptr;
    }
    // What it says: reftext, else the transcript beside it (NAME.txt for NAME.wav).
    if (j.contains("reftext")) {
      if (!j["reftext"].is_string() || j["reftext"].get<std::string>().size() > 1000) {
        fail(msg, "reftext: must be a string of at most 1000 bytes");
        return nullptr;
      }
      ref_text = j["reftext"].get<std::string>();
    } else {
      const auto dot = ref_audio.rfind('.');
      const std::string transcript =
          (dot > ref_audio.rfind('/') ? ref_audio.substr(0, dot) : ref_audio) + ".txt";
      gchar *contents = nullptr;
      gsize size = 0;
      if (g_file_get_contents(transcript.c_str(), &contents, &size, nullptr)) {
        ref_text.assign(contents, size);
        while (!ref_text.empty() && (ref_text.back() == '\n' || ref_text.back() == '\r'))
          ref_text.pop_back();
        g_free(contents);
      }
    }
  } else if (j.contains("reftext")) {
    fail(msg, "reftext: goes with refaudio");
    return nullptr;
  }
  // LiveTalking's custom_config: [{audiotype, imgpath, audiopath?}]. The last
  // part of imgpath names a clip in the avatar's actions/ (its audio is the
  // clip's own): never a path of the client's.
  std::map<std::string, std::string> clip_map;
  if (j.contains("custom_config")) {
    const json &c = j["custom_config"];
    if (!c.is_array() || c.size() > 64) {
      fail(msg, "custom_config: must be a list of {audiotype, imgpath}");
      return nullptr;
    }
    for (const auto &entry : c) {
      if (!entry.is_object() || !entry.contains("audiotype") || !entry.contains("imgpath") ||
          !entry["imgpath"].is_string() ||
          !(entry["audiotype"].is_number_integer() || entry["audiotype"].is_string())) {
        fail(msg, "custom_config: each entry is {audiotype: number, imgpath: string}");
        return nullptr;
      }
      std::string clip = entry["imgpath"].get<std::string>();
      while (!clip.empty() && clip.back() == '/') clip.pop_back();
      clip =
          clip.substr(clip.find_last_of('/') == std::string::npos ? 0 : clip.find_last_of('/') + 1);
      const std::string first = dir + "/actions/" + clip + "/frames/000000.png";
      if (clip.empty() || clip[0] == '.' ||
          clip.find_first_not_of(
              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.") !=
              std::string::npos ||
          !g_file_test(first.c_str(), G_FILE_TEST_IS_REGULAR)) {
        fail(msg, "custom_config: the avatar '" + name + "' has no action clip '" +
                      clip.substr(0, 64) + "' (actions/<name>/frames/ in its folder)");
        return nullptr;
      }
      const json &type = entry["audiotype"];
      clip_map[type.is_string() ? type.get<std::string>() : std::to_string(type.get<long>())] =
          clip;
    }
  }
  const std::uint64_t id = new_session_id();
  std::weak_ptr<bool> alive = alive_;
  auto session =
      std::make_shared<Session>(id, options_, name, dir, [this, id, alive](const SentenceEvent &e) {
        on_main([this, id, alive, e] {
          if (alive.lock() && *alive.lock()) publish(id, e);
        });
      });
  if (!ref_audio.empty()) session->set_reference(ref_audio, ref_text);
  if (!clip_map.empty()) session->set_clip_map(std::move(clip_map));
  return session;
}

void Api::set_audiotype(SoupServerMessage *msg, const std::string &body) {
  json j;
  auto s = session_for(msg, body, &j);
  if (!s) return;
  if (!j.contains("audiotype") ||
      !(j["audiotype"].is_number_integer() || j["audiotype"].is_string()))
    return fail(msg, "audiotype: missing (a number from custom_config, or a clip's name)");
  const json &type = j["audiotype"];
  const std::string key =
      type.is_string() ? type.get<std::string>() : std::to_string(type.get<long>());
  const std::string clip = s->clip_for(key);
  if (clip.empty())
    return fail(msg, "audiotype: no action clip for '" + key.substr(0, 64) +
                         "' (custom_config in /offer maps numbers; the avatar's actions/ "
                         "names clips)");
  const bool interrupt =
      j.contains("interrupt") &&
      (j["interrupt"] == true || j["interrupt"] == 1 || j["interrupt"] == "true");
  // The first time, the clip's audio is decoded: off the main thread.
  std::weak_ptr<Session> weak = s;
  reply_later(msg, [weak, clip, interrupt] {
    auto s = weak.lock();
    if (!s) throw SessionError("sessionid: no such session");
    if (interrupt) s->interrupt();
    const double seconds = s->play_clip(clip);
    return json{{"code", 0}, {"msg", "ok"}, {"data", {{"clip", clip}, {"seconds", seconds}}}};
  });
}

void Api::launch(SoupServerMessage *msg, std::shared_ptr<Session> session,
                 std::function<json()> start, std::function<void()> on_failure) {
  ++starting_;
  soup_server_message_pause(msg);
  g_object_ref(msg);
  std::thread([this, msg, session, start, on_failure] {
    json reply;
    std::string error;
    try {
      reply = start();  // blocking: the pipeline starts
    } catch (const std::exception &e) {
      error = e.what();
    }
    on_main([this, msg, session, reply, error, on_failure] {
      --starting_;
      if (error.empty() && *alive_) {
        sessions_[session->id()] = session;
        g_print("session %llu started (avatar %s%s)\n", (unsigned long long)session->id(),
                session->avatar().c_str(), session->push() ? ", push" : "");
        respond_json(msg, reply);
      } else {
        fail(msg, error.empty() ? "server shutting down" : error);
        g_printerr("session refused: %s\n", error.c_str());
        if (on_failure) on_failure();
        session->detach_bus();
        ++stopping_;
        std::thread([this, session] {
          session->stop();
          on_main([this] { --stopping_; });
        }).detach();
      }
      soup_server_message_unpause(msg);
      g_object_unref(msg);
    });
  }).detach();
}

void Api::offer(SoupServerMessage *msg, const std::string &body) {
  json j;
  if (!parse_json(msg, body, &j)) return;
  if (!j.contains("sdp") || !j["sdp"].is_string()) return fail(msg, "sdp: missing or not a string");
  if (j.contains("type") && j["type"] != "offer") return fail(msg, "type: must be \"offer\"");
  auto session = new_session(msg, j);
  if (!session) return;
  const std::string sdp = j["sdp"].get<std::string>();
  launch(msg, session, [session, sdp] {
    const std::string answer = session->answer(sdp);
    return json{{"code", 0}, {"sdp", answer}, {"type", "answer"}, {"sessionid", session->id()}};
  });
}

void Api::push(SoupServerMessage *msg, const std::string &body) {
  if (options_.transport == "webrtc")
    return fail(msg,
                "push is off on this server (start it with --transport whip|rtmp --push-url URL)");
  json j = json::object();
  if (body.find_first_not_of(" \t\r\n") != std::string::npos && !parse_json(msg, body, &j)) return;
  if (!j.is_object()) return fail(msg, "body: expected a JSON object");
  // One push per URL: {n} in --push-url numbers them (SRS stream names, RTMP keys).
  PushTarget target;
  target.transport = options_.transport;
  const auto placeholder = options_.push_url.find("{n}");
  if (placeholder == std::string::npos) {
    if (!push_slots_.empty())
      return fail(msg, "push: one is already running to --push-url (put {n} in it for more)");
    target.url = options_.push_url;
  } else {
    while (push_slots_.count(target.slot)) ++target.slot;
    target.url = options_.push_url;
    target.url.replace(placeholder, 3, std::to_string(target.slot));
  }
  if (!options_.push_token_env.empty())
    if (const char *token = g_getenv(options_.push_token_env.c_str())) target.token = token;
  auto session = new_session(msg, j);
  if (!session) return;
  push_slots_.insert(target.slot);
  const unsigned slot = target.slot;
  launch(
      msg, session,
      [session, target] {
        session->start_push(target);
        return json{{"code", 0},
                    {"msg", "ok"},
                    {"sessionid", session->id()},
                    {"data", {{"transport", target.transport}, {"slot", target.slot}}}};
      },
      [this, slot] { push_slots_.erase(slot); });
}

void Api::end_session_route(SoupServerMessage *msg, const std::string &body) {
  json j;
  auto s = session_for(msg, body, &j);
  if (!s) return;
  end_session(s->id(), "ended by the API");
  respond_json(msg, json{{"code", 0}, {"msg", "ok"}});
}

std::shared_ptr<Session> Api::session_for(SoupServerMessage *msg, const std::string &body,
                                          void *json_out) {
  json &j = *static_cast<json *>(json_out);
  if (!parse_json(msg, body, &j)) return nullptr;
  std::uint64_t id = 0;
  std::string why;
  if (!parse_session_id(j, &id, &why)) {
    fail(msg, why);
    return nullptr;
  }
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    fail(msg, "sessionid: no such session");
    return nullptr;
  }
  it->second->touch();
  return it->second;
}

void Api::human(SoupServerMessage *msg, const std::string &body) {
  json j;
  auto s = session_for(msg, body, &j);
  if (!s) return;
  if (!j.contains("text") || !j["text"].is_string())
    return fail(msg, "text: missing or not a string");
  const std::string type = j.value("type", std::string("echo"));
  if (j.contains("type") && !j["type"].is_string())
    return fail(msg, "type: must be \"echo\" or \"chat\"");
  const bool interrupt =
      j.contains("interrupt") &&
      (j["interrupt"] == true || j["interrupt"] == 1 || j["interrupt"] == "true");
  if (type == "chat" && options_.llm_url.empty())
    return fail(msg, "type: chat is not configured on this server (start it with --llm-url)");
  if (type != "echo" && type != "chat") return fail(msg, "type: must be \"echo\" or \"chat\"");
  const std::string text = j["text"].get<std::string>();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return fail(msg, "text: empty");
  talker::tts::VoiceOptions voice;
  if (j.contains("tts")) {
    const std::string why = parse_voice(j["tts"], &voice);
    if (!why.empty()) return fail(msg, why);
    if (const std::string no = s->check_voice(voice); !no.empty()) return fail(msg, "tts: " + no);
  }
  if (interrupt) s->interrupt();
  if (type == "chat") {
    s->chat(text, voice);
    return respond_json(msg, json{{"code", 0}, {"msg", "ok"}});
  }
  const guint64 utterance = s->say(text, voice);
  respond_json(msg, json{{"code", 0}, {"msg", "ok"}, {"data", {{"utterance", utterance}}}});
}

void Api::humanaudio(SoupServerMessage *msg, const std::string &body) {
  // LiveTalking's form: multipart/form-data with `sessionid` and `file`.
  SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
  GBytes *bytes = g_bytes_new(body.data(), body.size());
  SoupMultipart *form = soup_multipart_new_from_message(h, bytes);
  g_bytes_unref(bytes);
  if (!form) return fail(msg, "body: expected multipart/form-data with sessionid and file");
  std::string sessionid, file, filename;
  bool interrupt = false, have_file = false;
  for (int i = 0; i < soup_multipart_get_length(form); ++i) {
    SoupMessageHeaders *part_headers = nullptr;
    GBytes *part = nullptr;
    if (!soup_multipart_get_part(form, i, &part_headers, &part)) continue;
    char *disposition = nullptr;
    GHashTable *params = nullptr;
    if (!soup_message_headers_get_content_disposition(part_headers, &disposition, &params))
      continue;
    const char *name = static_cast<const char *>(g_hash_table_lookup(params, "name"));
    gsize size = 0;
    const char *data = static_cast<const char *>(g_bytes_get_data(part, &size));
    const std::string value(data ? data : "", size);
    if (name && std::strcmp(name, "sessionid") == 0) sessionid = value;
    if (name && std::strcmp(name, "interrupt") == 0) interrupt = value == "true" || value == "1";
    if (name && std::strcmp(name, "file") == 0) {
      file = value;
      have_file = true;
      if (const char *f = static_cast<const char *>(g_hash_table_lookup(params, "filename")))
        filename = f;
    }
    g_free(disposition);
    g_hash_table_destroy(params);
  }
  soup_multipart_free(form);
  if (sessionid.empty()) return fail(msg, "sessionid: missing");
  if (!have_file) return fail(msg, "file: missing");
  json j;
  auto s = session_for(msg, json_text(json{{"sessionid", sessionid}}), &j);
  if (!s) return;

  // Decoding takes a while: off the HTTP thread, the reply when it is done.
  soup_server_message_pause(msg);
  g_object_ref(msg);
  DecodeLimits limits;
  limits.max_seconds = options_.max_audio_s;
  std::weak_ptr<Session> weak = s;
  std::thread([this, msg, weak, file = std::move(file), limits, interrupt] {
    std::vector<int16_t> samples;
    std::string error;
    try {
      samples = decode_audio_upload(file, limits);
    } catch (const std::exception &e) {
      error = e.what();
    }
    on_main([this, msg, weak, samples = std::move(samples), error, interrupt]() mutable {
      auto s = weak.lock();
      if (!error.empty()) {
        fail(msg, error);
      } else if (!s || !*alive_) {
        fail(msg, "sessionid: no such session");
      } else {
        if (interrupt) s->interrupt();
        const double seconds = double(samples.size()) / 16000;
        const guint64 utterance = s->say_audio(std::move(samples));
        respond_json(msg, json{{"code", 0},
                               {"msg", "ok"},
                               {"data", {{"utterance", utterance}, {"seconds", seconds}}}});
      }
      soup_server_message_unpause(msg);
      g_object_unref(msg);
    });
  }).detach();
}

void Api::record(SoupServerMessage *msg, const std::string &body) {
  if (options_.record_dir.empty())
    return fail(msg, "recording is off on this server (start it with --record-dir)");
  json j;
  auto s = session_for(msg, body, &j);
  if (!s) return;
  if (s->push())
    return fail(msg, "record: not for a push session (record it where it is pushed to)");
  const std::string type =
      j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
  if (type != "start_record" && type != "end_record")
    return fail(msg, "type: must be \"start_record\" or \"end_record\"");
  // Adding or finishing the file's branch waits on the streaming threads.
  reply_later(msg, [this, s, type] {
    try {
      if (type == "start_record")
        s->start_recording(options_.record_dir);
      else
        s->stop_recording();
    } catch (const std::exception &e) {
      throw SessionError(std::string("record: ") + e.what());
    }
    g_print("session %llu: %s\n", (unsigned long long)s->id(),
            type == "start_record" ? "recording" : "recording ended");
    return json{{"code", 0}, {"msg", "ok"}};
  });
}

void Api::recording_file(SoupServerMessage *msg, const std::string &id_text) {
  // The id only: digits, which also makes it a safe file name.
  if (options_.record_dir.empty())
    return fail(msg, "recording is off on this server (start it with --record-dir)");
  if (id_text.empty() || id_text.size() > 20 ||
      id_text.find_first_not_of("0123456789") != std::string::npos)
    return fail(msg, "sessionid: not a session id", SOUP_STATUS_NOT_FOUND);
  const auto it = sessions_.find(std::strtoull(id_text.c_str(), nullptr, 10));
  if (it != sessions_.end() && it->second->recording())
    return fail(msg, "record: still recording (end_record first)", SOUP_STATUS_CONFLICT);
  for (const char *ext : {"mp4", "webm"}) {
    const std::string file = options_.record_dir + "/" + id_text + "." + ext;
    GMappedFile *mapped = g_mapped_file_new(file.c_str(), FALSE, nullptr);
    if (!mapped) continue;
    GBytes *bytes = g_mapped_file_get_bytes(mapped);  // no copy: the file's pages
    g_mapped_file_unref(mapped);
    soup_server_message_set_status(msg, 200, nullptr);
    SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
    soup_message_headers_set_content_type(h, ext == std::string("mp4") ? "video/mp4" : "video/webm",
                                          nullptr);
    const std::string disposition = "attachment; filename=\"" + id_text + "." + ext + "\"";
    soup_message_headers_replace(h, "Content-Disposition", disposition.c_str());
    soup_message_body_append_bytes(soup_server_message_get_response_body(msg), bytes);
    g_bytes_unref(bytes);
    return;
  }
  fail(msg, "record: no recording for this session", SOUP_STATUS_NOT_FOUND);
}

void Api::interrupt_talk(SoupServerMessage *msg, const std::string &body) {
  json j;
  auto s = session_for(msg, body, &j);
  if (!s) return;
  s->interrupt();
  respond_json(msg, json{{"code", 0}, {"msg", "ok"}});
}

void Api::is_speaking(SoupServerMessage *msg, const std::string &body) {
  json j;
  auto s = session_for(msg, body, &j);
  if (!s) return;
  respond_json(msg, json{{"code", 0}, {"msg", "ok"}, {"data", s->speaking()}});
}

void Api::sse(SoupServerMessage *msg) {
  GHashTable *query = nullptr;
  if (GUri *uri = soup_server_message_get_uri(msg))
    if (const char *q = g_uri_get_query(uri)) query = soup_form_decode(q);
  const char *raw =
      query ? static_cast<const char *>(g_hash_table_lookup(query, "sessionid")) : nullptr;
  json j = json::object();
  if (raw) j["sessionid"] = raw;
  if (query) g_hash_table_unref(query);
  std::uint64_t id = 0;
  std::string why;
  if (!parse_session_id(j, &id, &why)) return fail(msg, why);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return fail(msg, "sessionid: no such session");
  it->second->touch();
  soup_server_message_set_status(msg, 200, nullptr);
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  soup_message_headers_set_content_type(h, "text/event-stream", nullptr);
  soup_message_headers_replace(h, "Cache-Control", "no-store");
  soup_message_headers_set_encoding(h, SOUP_ENCODING_CHUNKED);
  SoupMessageBody *out = soup_server_message_get_response_body(msg);
  soup_message_body_set_accumulate(out, FALSE);
  const std::string hello = ": talker-server events for this session\n\n";
  soup_message_body_append(out, SOUP_MEMORY_COPY, hello.data(), hello.size());
  sse_clients_[id].insert(msg);
  // The stream is forgotten when it ends or its client goes away.
  struct Gone {
    Api *api;
    std::uint64_t id;
    std::weak_ptr<bool> alive;
  };
  for (const char *signal : {"finished", "disconnected"})
    g_signal_connect_data(
        msg, signal, G_CALLBACK(+[](SoupServerMessage *m, gpointer data) {
          auto *g = static_cast<Gone *>(data);
          if (auto a = g->alive.lock(); a && *a) {
            auto it = g->api->sse_clients_.find(g->id);
            if (it != g->api->sse_clients_.end()) {
              it->second.erase(m);
              if (it->second.empty()) g->api->sse_clients_.erase(it);
            }
          }
        }),
        new Gone{this, id, alive_},
        +[](gpointer data, GClosure *) { delete static_cast<Gone *>(data); }, GConnectFlags(0));
}

void Api::publish(std::uint64_t id, const SentenceEvent &e) {
  auto it = sse_clients_.find(id);
  if (it == sse_clients_.end()) return;
  json data{{"status", e.state}, {"text", e.text}, {"sentence", e.id}};
  if (!e.reason.empty()) data["reason"] = e.reason;
  if (!e.spoken.empty()) data["spoken"] = e.spoken;
  const std::string chunk = "data: " + json_text(data) + "\n\n";
  for (SoupServerMessage *m : it->second) {
    soup_message_body_append(soup_server_message_get_response_body(m), SOUP_MEMORY_COPY,
                             chunk.data(), chunk.size());
    soup_server_message_unpause(m);
  }
}

void Api::drop_closed_event_streams() {
  // libsoup reads nothing from a connection while it writes a response, so a
  // client that closed its /sse stream is noticed only when a write fails: up
  // to two keep-alives later. An event-stream client sends nothing after its
  // request, so a readable socket means it is leaving: a FIN (recv returns 0),
  // an error, or, over TLS, its close_notify just before the FIN.
  std::vector<SoupServerMessage *> gone;
  for (auto &[id, clients] : sse_clients_)
    for (SoupServerMessage *m : clients) {
      GSocket *sock = soup_server_message_get_socket(m);
      if (!sock) {
        gone.push_back(m);
        continue;
      }
      char byte;
      const ssize_t n = recv(g_socket_get_fd(sock), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) gone.push_back(m);
    }
  for (SoupServerMessage *m : gone) {
    for (auto it = sse_clients_.begin(); it != sse_clients_.end();) {
      it->second.erase(m);
      it = it->second.empty() ? sse_clients_.erase(it) : std::next(it);
    }
    // Ends the response: libsoup's write then fails and frees the connection.
    soup_message_body_complete(soup_server_message_get_response_body(m));
    soup_server_message_unpause(m);
  }
}

void Api::admin_sessions(SoupServerMessage *msg) {
  json list = json::array();
  for (auto &[id, s] : sessions_) {
    const SessionInfo i = s->info();
    list.push_back({{"sessionid", i.id},
                    {"avatar", i.avatar},
                    {"speaking", i.speaking},
                    {"connected", i.connected},
                    {"created", i.created_unix_ms},
                    {"frames_generated", i.frames_generated},
                    {"frames_skipped", i.frames_skipped},
                    {"viewers", i.viewers},
                    {"event_streams", sse_clients_.count(id) ? sse_clients_[id].size() : 0},
                    {"latency_ms", i.latency_ms},
                    {"recording", i.recording},
                    {"transport", i.transport},
                    {"push_state", i.push_state}});
  }
  respond_json(msg, json{{"code", 0},
                         {"msg", "ok"},
                         {"data",
                          {{"sessions", list},
                           {"max_sessions", options_.max_sessions},
                           {"starting", starting_},
                           {"stopping", stopping_}}}});
}

void Api::end_session(std::uint64_t id, const std::string &reason) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  std::shared_ptr<Session> s = it->second;
  sessions_.erase(it);
  if (s->push()) push_slots_.erase(s->push_target().slot);
  g_print("session %llu ended: %s\n", (unsigned long long)id, reason.c_str());
  // Its event streams end too.
  if (auto c = sse_clients_.find(id); c != sse_clients_.end()) {
    const std::string chunk = "event: end\ndata: " + json_text(json{{"reason", reason}}) + "\n\n";
    for (SoupServerMessage *m : c->second) {
      SoupMessageBody *out = soup_server_message_get_response_body(m);
      soup_message_body_append(out, SOUP_MEMORY_COPY, chunk.data(), chunk.size());
      soup_message_body_complete(out);
      soup_server_message_unpause(m);
    }
  }
  s->detach_bus();
  ++stopping_;
  std::thread([this, s] {
    s->stop();
    on_main([this, s]() mutable {
      s.reset();
      // Give freed pipelines' memory back to the system: without it glibc keeps
      // each session's peak in its arenas and the server looks like it leaks.
      malloc_trim(0);
      --stopping_;
    });
  }).detach();
}

gboolean Api::on_tick(gpointer data) {
  auto *self = static_cast<Api *>(data);
  std::vector<std::pair<std::uint64_t, std::string>> ended;
  for (auto &[id, s] : self->sessions_) {
    const std::string why = s->check();
    if (!why.empty()) ended.emplace_back(id, why);
  }
  for (auto &[id, why] : ended) self->end_session(id, why);
  self->drop_closed_event_streams();
  self->request_watch_->check();
  // SSE keep-alive, so that proxies keep the stream open (and a half-open
  // connection, whose peer vanished without a FIN, fails a write).
  if (++self->beat_ % 30 == 0)
    for (auto &[id, clients] : self->sse_clients_)
      for (SoupServerMessage *m : clients) {
        soup_message_body_append(soup_server_message_get_response_body(m), SOUP_MEMORY_STATIC,
                                 ":\n\n", 3);
        soup_server_message_unpause(m);
      }
  return G_SOURCE_CONTINUE;
}

}  // namespace talker::server

namespace talker::server {
namespace {

bool is_name(const std::string &name) {
  // A name, never a path: letters, digits, '_', '-', '.', not starting with '.'.
  return !name.empty() && name.size() <= 64 && name[0] != '.' &&
         name.find_first_not_of(
             "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.") ==
             std::string::npos;
}

json task_json(const AvatarTask &t) {
  json j = {{"task_id", t.id},
            {"name", t.name},
            {"source", t.source},
            {"state", t.state},
            {"stage", t.stage},
            {"done", t.done},
            {"total", t.total},
            {"progress", t.progress},
            {"created", t.created_ms},
            {"started", t.started_ms},
            {"finished", t.finished_ms},
            {"bbox_shift", t.bbox_shift},
            {"extra_margin", t.extra_margin},
            {"max_frames", t.max_frames}};
  if (!t.error.empty()) j["error"] = t.error;
  return j;
}

// An integer field, from JSON (a number) or a form (text); `out` keeps its
// default when absent. Empty return: fine; else the client's message.
// An integer field; `from_form`: the request was a form, whose fields are
// all text (JSON must give a number: "0" there is a client's bug).
std::string int_field(const json &fields, const char *key, long lo, long hi, bool from_form,
                      long *out) {
  if (!fields.contains(key)) return "";
  const json &v = fields[key];
  long value = 0;
  if (v.is_number_integer()) {
    value = v.get<long>();
  } else if (v.is_string() && from_form) {
    const std::string text = v.get<std::string>();
    char *end = nullptr;
    errno = 0;
    value = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end || errno) return std::string(key) + ": must be an integer";
  } else {
    return std::string(key) + ": must be an integer";
  }
  if (value < lo || value > hi)
    return std::string(key) + ": must be in " + std::to_string(lo) + ".." + std::to_string(hi);
  *out = value;
  return "";
}

}  // namespace

void Api::avatar_task_create(SoupServerMessage *msg, const std::string &body) {
  if (!avatar_jobs_) return fail(msg, "avatar jobs are off on this server (--avatar-jobs 0)");
  if (options_.vae.empty())
    return fail(msg, "avatar jobs need --vae on this server (the VAE the latents are made with)");
  if (access(options_.avatars.c_str(), W_OK) != 0)
    return fail(msg, "avatar jobs need a writable --avatars folder on this server");

  // A form with the upload, or JSON naming a file in --avatar-sources.
  json fields = json::object();
  GBytes *upload = nullptr;
  SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
  const char *type = soup_message_headers_get_content_type(h, nullptr);
  const bool form = type && g_ascii_strcasecmp(type, "multipart/form-data") == 0;
  if (form) {
    GBytes *bytes = g_bytes_new_static(body.data(), body.size());
    SoupMultipart *form = soup_multipart_new_from_message(h, bytes);
    g_bytes_unref(bytes);
    if (!form) return fail(msg, "body: not a readable multipart/form-data");
    for (int i = 0; i < soup_multipart_get_length(form); ++i) {
      SoupMessageHeaders *part_headers = nullptr;
      GBytes *part = nullptr;
      char *disposition = nullptr;
      GHashTable *params = nullptr;
      if (!soup_multipart_get_part(form, i, &part_headers, &part) ||
          !soup_message_headers_get_content_disposition(part_headers, &disposition, &params))
        continue;
      const char *name = static_cast<const char *>(g_hash_table_lookup(params, "name"));
      if (name && std::strcmp(name, "file") == 0) {
        if (upload) g_bytes_unref(upload);
        upload = g_bytes_ref(part);
      } else if (name) {
        gsize size = 0;
        const char *data = static_cast<const char *>(g_bytes_get_data(part, &size));
        if (size <= 1024) fields[name] = std::string(data ? data : "", size);
      }
      g_free(disposition);
      g_hash_table_destroy(params);
    }
    // The parts point into the body, which outlives this function: copy the upload.
    if (upload) {
      GBytes *copy = g_bytes_new(g_bytes_get_data(upload, nullptr), g_bytes_get_size(upload));
      g_bytes_unref(upload);
      upload = copy;
    }
    soup_multipart_free(form);
  } else if (!parse_json(msg, body, &fields)) {
    return;
  }
  struct Unref {
    GBytes *b;
    ~Unref() {
      if (b) g_bytes_unref(b);
    }
  } unref{upload};

  AvatarTaskRequest request;
  if (!fields.contains("name") || !fields["name"].is_string())
    return fail(msg, "name: missing (the new avatar's name)");
  request.name = fields["name"].get<std::string>();
  if (!is_name(request.name))
    return fail(msg, "name: '" + request.name.substr(0, 64) +
                         "' is not an avatar name (letters, digits, _ - ., at most 64)");
  if (g_file_test((options_.avatars + "/" + request.name).c_str(), G_FILE_TEST_EXISTS) ||
      avatar_jobs_->pending_name(request.name))
    return fail(msg, "name: an avatar named '" + request.name + "' exists or is being made");
  long bbox_shift = 0, extra_margin = 10, max_frames = options_.avatar_max_frames;
  for (auto why :
       {int_field(fields, "bbox_shift", -200, 200, form, &bbox_shift),
        int_field(fields, "extra_margin", 0, 200, form, &extra_margin),
        int_field(fields, "max_frames", 1, options_.avatar_max_frames, form, &max_frames)})
    if (!why.empty()) return fail(msg, why);
  request.bbox_shift = int(bbox_shift);
  request.extra_margin = int(extra_margin);
  request.max_frames = unsigned(max_frames);

  const bool has_source = fields.contains("source");
  if (upload && has_source) return fail(msg, "file, source: give one of them");
  std::string field = "file";
  if (has_source) {
    field = "source";
    if (options_.avatar_sources.empty())
      return fail(msg, "source: this server has no --avatar-sources (upload a file instead)");
    if (!fields["source"].is_string() || !is_name(fields["source"].get<std::string>()))
      return fail(msg, "source: must be a file name in the server's sources folder");
    request.source = fields["source"].get<std::string>();
    request.input = options_.avatar_sources + "/" + request.source;
    if (!g_file_test(request.input.c_str(), G_FILE_TEST_IS_REGULAR))
      return fail(msg, "source: no file named '" + request.source + "'");
  } else if (!upload) {
    return fail(msg, "file: missing (upload a video or a photo, or name a source)");
  } else if (g_bytes_get_size(upload) == 0) {
    return fail(msg, "file: empty");
  }

  std::string work;
  std::string id;
  try {
    id = avatar_jobs_->reserve(&work);
  } catch (const std::exception &e) {
    return fail(msg, std::string("avatar jobs: ") + e.what());
  }
  if (upload) {
    request.source = "upload";
    request.input = work + "/input";
    GError *err = nullptr;
    gsize size = 0;
    const char *data = static_cast<const char *>(g_bytes_get_data(upload, &size));
    if (!g_file_set_contents(request.input.c_str(), data, gssize(size), &err)) {
      avatar_jobs_->release(id);
      const std::string why = err ? err->message : "";
      if (err) g_error_free(err);
      return fail(msg, "file: cannot be stored: " + why);
    }
  }

  // Reading the file's first frame takes a moment: off the main thread.
  soup_server_message_pause(msg);
  g_object_ref(msg);
  const std::string builder =
      options_.avatar_builder.empty() ? builder_beside_me() : options_.avatar_builder;
  std::thread([this, msg, id, request, builder, field] {
    std::string info, error;
    const bool ok = probe_media(builder, request.input, &info, &error);
    on_main([this, msg, id, request, info, error, ok, field] {
      if (!*alive_) {
        fail(msg, "server shutting down");
      } else if (!ok) {
        avatar_jobs_->release(id);
        fail(msg, field + ": " + error);
      } else {
        json media = json::parse(info, nullptr, false);
        const int w = media.value("width", 0), h = media.value("height", 0);
        if (w < 64 || h < 64 || w > 8192 || h > 8192) {
          avatar_jobs_->release(id);
          fail(msg, field + ": " + std::to_string(w) + "x" + std::to_string(h) +
                        " is outside 64x64..8192x8192");
        } else if (avatar_jobs_->pending_name(request.name)) {
          avatar_jobs_->release(id);  // two requests for one name at once: the first wins
          fail(msg, "name: an avatar named '" + request.name + "' exists or is being made");
        } else {
          avatar_jobs_->submit(id, request);
          AvatarTask task;
          avatar_jobs_->find(id, &task);
          g_print("avatar task %s: %s from %s\n", id.c_str(), request.name.c_str(),
                  request.source.c_str());
          json data = task_json(task);
          data["input"] = media;
          respond_json(msg, json{{"code", 0}, {"msg", "ok"}, {"data", data}});
        }
      }
      soup_server_message_unpause(msg);
      g_object_unref(msg);
    });
  }).detach();
}

void Api::avatar_tasks(SoupServerMessage *msg) {
  if (!avatar_jobs_) return fail(msg, "avatar jobs are off on this server (--avatar-jobs 0)");
  json tasks = json::array();
  for (const auto &t : avatar_jobs_->list()) tasks.push_back(task_json(t));
  respond_json(msg, json{{"code", 0}, {"msg", "ok"}, {"data", {{"tasks", tasks}}}});
}

void Api::avatar_task(SoupServerMessage *msg, const std::string &method, const std::string &id) {
  if (!avatar_jobs_) return fail(msg, "avatar jobs are off on this server (--avatar-jobs 0)");
  if (method == "DELETE") {
    const std::string was = avatar_jobs_->remove(id);
    if (was.empty()) return fail(msg, "task: no such task");
    g_print("avatar task %s: %s\n", id.c_str(),
            was == "queued" || was == "running" ? "cancelled" : "forgotten");
    return respond_json(
        msg,
        json{{"code", 0}, {"msg", was == "queued" || was == "running" ? "cancelled" : "removed"}});
  }
  AvatarTask task;
  if (!avatar_jobs_->find(id, &task)) return fail(msg, "task: no such task");
  respond_json(msg, json{{"code", 0}, {"msg", "ok"}, {"data", task_json(task)}});
}

}  // namespace talker::server
