// SPDX-License-Identifier: LGPL-2.1-or-later
// Avatar jobs (/api/avatar/task): talker-avatar runs as a child process
// (argv, never a shell), a few at a time, its progress lines read as it
// works; the finished folder is renamed into --avatars, where sessions find it
// by name. A child of its own: a crash or a kill takes no session with it.
#pragma once

#include <gio/gio.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace talker::server {

struct AvatarTask {
  std::string id;      // 64 random bits, hex
  std::string name;    // the avatar it makes
  std::string source;  // "upload" or the name in --avatar-sources
  std::string state;   // queued, running, done, failed, cancelled
  std::string stage;   // frames, faces, latents (while running)
  std::size_t done = 0, total = 0;
  double progress = 0;  // 0..1 over all stages
  std::string error;
  std::int64_t created_ms = 0, started_ms = 0, finished_ms = 0;  // Unix ms; 0: not yet
  int bbox_shift = 0, extra_margin = 10;
  unsigned max_frames = 0;
};

struct AvatarTaskRequest {
  std::string name, source;
  std::string input;  // the file the builder reads (the server chose its path)
  int bbox_shift = 0, extra_margin = 10;
  unsigned max_frames = 0;
};

// `builder probe input`: its JSON line in `info`, or its message in `error`.
bool probe_media(const std::string &builder, const std::string &input, std::string *info,
                 std::string *error);

class AvatarJobs {
 public:
  // `avatars`: where finished avatars go; work happens in avatars/.tasks/<id>
  // (a name sessions never accept: it starts with '.').
  AvatarJobs(std::string builder, std::string vae, std::string avatars, unsigned concurrent);
  ~AvatarJobs();  // kills running builders, removes their work

  // A new task id and its folder (for the upload), not yet queued.
  std::string reserve(std::string *work_dir);
  // Queues a reserved task. Its input must be in place.
  void submit(const std::string &id, const AvatarTaskRequest &request);
  // Forgets a reserved task that was not submitted (its folder goes).
  void release(const std::string &id);
  // True when a queued or running task makes `name`.
  bool pending_name(const std::string &name) const;

  std::vector<AvatarTask> list() const;
  bool find(const std::string &id, AvatarTask *out) const;
  // Cancels a queued or running task, or forgets a finished one; its work
  // folder goes, a finished avatar stays. Returns the state it was in, "" if unknown.
  std::string remove(const std::string &id);

 private:
  struct Job;
  void start_ready();  // with lock_ held
  void run(std::shared_ptr<Job> job);
  void finish(Job &job, bool ok, const std::string &error);

  const std::string builder_, vae_, avatars_;
  const unsigned concurrent_;
  mutable std::mutex lock_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::vector<std::string> order_;  // ids, oldest first
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace talker::server
