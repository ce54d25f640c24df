// SPDX-License-Identifier: LGPL-2.1-or-later
// talker-server's HTTP side (libsoup 3): LiveTalking's routes, the page, SSE,
// and the sessions' lifetimes. Everything here runs on the main context; the
// slow parts (starting a pipeline and answering an offer, stopping one) run
// on threads of their own and come back to it.
#pragma once

#include <libsoup/soup.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "tools/server/avatar_jobs.h"
#include "tools/server/options.h"
#include "tools/server/request_watch.h"
#include "tools/server/session.h"

namespace talker::server {

class Api {
 public:
  explicit Api(Options options);
  ~Api();
  // Listens; throws std::runtime_error when it cannot. Returns the port.
  unsigned listen();
  // Ends every session and waits for their pipelines to stop.
  void shutdown();

 private:
  struct Reply;
  static void on_request(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *,
                         gpointer self);
  static void on_early(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *,
                       gpointer self);
  void handle(SoupServerMessage *msg, const std::string &path);
  bool authorized(SoupServerMessage *msg);
  void add_cors(SoupServerMessage *msg);

  void offer(SoupServerMessage *msg, const std::string &body);
  void push(SoupServerMessage *msg, const std::string &body);
  void end_session_route(SoupServerMessage *msg, const std::string &body);
  void set_audiotype(SoupServerMessage *msg, const std::string &body);
  void human(SoupServerMessage *msg, const std::string &body);
  void humanaudio(SoupServerMessage *msg, const std::string &body);
  void interrupt_talk(SoupServerMessage *msg, const std::string &body);
  void record(SoupServerMessage *msg, const std::string &body);
  void recording_file(SoupServerMessage *msg, const std::string &id_text);
  void is_speaking(SoupServerMessage *msg, const std::string &body);
  void sse(SoupServerMessage *msg);
  void admin_sessions(SoupServerMessage *msg);
  void avatar_task_create(SoupServerMessage *msg, const std::string &body);
  void avatar_tasks(SoupServerMessage *msg);
  void avatar_task(SoupServerMessage *msg, const std::string &method, const std::string &id);

  // A session for the request's `avatar` (or the default), or nullptr after
  // failing `msg` (bad avatar, full).
  std::shared_ptr<Session> new_session(SoupServerMessage *msg, const nlohmann::json &j);
  // Runs `start` (blocking) on a thread; on success the session is added and
  // `msg` answered with its result, else failed and `on_failure` run.
  void launch(SoupServerMessage *msg, std::shared_ptr<Session> session,
              std::function<nlohmann::json()> start, std::function<void()> on_failure = {});
  std::shared_ptr<Session> session_for(SoupServerMessage *msg, const std::string &body,
                                       void *json_out);
  void end_session(std::uint64_t id, const std::string &reason);
  void publish(std::uint64_t id, const SentenceEvent &event);
  std::size_t body_limit(const std::string &path) const;
  std::string avatar_dir(const std::string &name, std::string *why) const;
  std::uint64_t new_session_id();
  // Forgets /sse streams whose client went away (checked every tick).
  void drop_closed_event_streams();
  static gboolean on_tick(gpointer self);

  const Options options_;
  SoupServer *server_ = nullptr;
  std::unique_ptr<RequestWatch> request_watch_;  // header and body timeouts, chunked limit
  guint tick_ = 0;
  unsigned beat_ = 0;  // ticks, for the SSE keep-alive
  std::map<std::uint64_t, std::shared_ptr<Session>> sessions_;
  unsigned starting_ = 0;  // offers being answered: they hold a slot
  unsigned stopping_ = 0;  // pipelines being stopped on their threads
  std::map<std::uint64_t, std::set<SoupServerMessage *>> sse_clients_;
  std::set<std::uint64_t> issued_ids_;
  std::set<unsigned> push_slots_;            // {n} of --push-url in use
  std::unique_ptr<AvatarJobs> avatar_jobs_;  // null: --avatar-jobs 0
  std::shared_ptr<bool> alive_;              // for work that comes back after shutdown
};

}  // namespace talker::server
