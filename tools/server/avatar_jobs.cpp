// SPDX-License-Identifier: LGPL-2.1-or-later
#include "tools/server/avatar_jobs.h"

#include <glib.h>
#include <sys/random.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <stdexcept>

namespace talker::server {
namespace {

namespace fs = std::filesystem;

std::int64_t unix_ms() {
  return g_get_real_time() / 1000;
}

// Where each stage starts in the overall progress, and its share of it:
// reading is quick, faces (detector + landmarks) and latents (the VAE
// encoder) take the time, in proportions that depend on the VAE and the device.
struct StageShare {
  const char *name;
  double start, share;
};
constexpr StageShare kStages[] = {{"frames", 0.0, 0.1}, {"faces", 0.1, 0.5}, {"latents", 0.6, 0.4}};

// Finished tasks kept for GET /api/avatar/tasks.
constexpr std::size_t kKeepFinished = 100;

}  // namespace

bool probe_media(const std::string &builder, const std::string &input, std::string *info,
                 std::string *error) {
  const char *argv[] = {builder.c_str(), "probe", input.c_str(), "--untrusted-input", nullptr};
  GError *err = nullptr;
  GSubprocess *process = g_subprocess_newv(
      argv, GSubprocessFlags(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE),
      &err);
  if (!process) {
    *error = std::string("the avatar builder did not start: ") + (err ? err->message : "");
    if (err) g_error_free(err);
    return false;
  }
  char *out = nullptr, *errs = nullptr;
  g_subprocess_communicate_utf8(process, nullptr, nullptr, &out, &errs, nullptr);
  const bool ok = g_subprocess_get_if_exited(process) && g_subprocess_get_exit_status(process) == 0;
  // Its own message only: OpenCV's log lines name paths of the server's.
  std::string text;
  std::istringstream lines(errs ? errs : "");
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("talker-avatar: ", 0) == 0) text = line.substr(15);
  if (ok)
    *info = out ? out : "";
  else
    *error = text.empty() ? "cannot be read" : text;
  g_free(out);
  g_free(errs);
  g_object_unref(process);
  return ok;
}

struct AvatarJobs::Job {
  AvatarTask task;
  AvatarTaskRequest request;
  std::string work_dir;
  bool submitted = false, cancelled = false;
  GSubprocess *process = nullptr;  // while running; owned
};

AvatarJobs::AvatarJobs(std::string builder, std::string vae, std::string avatars,
                       unsigned concurrent)
    : builder_(std::move(builder)),
      vae_(std::move(vae)),
      avatars_(std::move(avatars)),
      concurrent_(concurrent ? concurrent : 1) {}

AvatarJobs::~AvatarJobs() {
  {
    std::lock_guard<std::mutex> l(lock_);
    stopping_ = true;
    for (auto &[id, job] : jobs_) {
      job->cancelled = true;
      if (job->process) g_subprocess_force_exit(job->process);
    }
  }
  // No thread is started once stopping_ is set: threads_ is ours now.
  for (auto &t : threads_) t.join();
  std::error_code ec;
  for (auto &[id, job] : jobs_) fs::remove_all(job->work_dir, ec);
}

std::string AvatarJobs::reserve(std::string *work_dir) {
  std::uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != sizeof r) throw std::runtime_error("getrandom failed");
  char id[17];
  std::snprintf(id, sizeof id, "%016" PRIx64, r);
  auto job = std::make_shared<Job>();
  job->task.id = id;
  job->work_dir = avatars_ + "/.tasks/" + id;
  std::error_code ec;
  fs::create_directories(job->work_dir, ec);
  if (ec) throw std::runtime_error("cannot create " + job->work_dir + ": " + ec.message());
  fs::permissions(job->work_dir, fs::perms::owner_all, ec);
  *work_dir = job->work_dir;
  std::lock_guard<std::mutex> l(lock_);
  jobs_[id] = job;
  return id;
}

void AvatarJobs::release(const std::string &id) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard<std::mutex> l(lock_);
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second->submitted) return;
    job = it->second;
    jobs_.erase(it);
  }
  std::error_code ec;
  fs::remove_all(job->work_dir, ec);
}

void AvatarJobs::submit(const std::string &id, const AvatarTaskRequest &request) {
  std::lock_guard<std::mutex> l(lock_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) throw std::runtime_error("no such reserved task");
  Job &job = *it->second;
  job.submitted = true;
  job.request = request;
  job.task.name = request.name;
  job.task.source = request.source;
  job.task.bbox_shift = request.bbox_shift;
  job.task.extra_margin = request.extra_margin;
  job.task.max_frames = request.max_frames;
  job.task.state = "queued";
  job.task.created_ms = unix_ms();
  order_.push_back(id);
  // Forget the oldest finished tasks beyond what is kept.
  std::size_t finished = 0;
  for (const auto &o : order_) {
    const std::string &s = jobs_[o]->task.state;
    finished += s != "queued" && s != "running";
  }
  for (auto o = order_.begin(); finished > kKeepFinished && o != order_.end();) {
    const std::string &s = jobs_[*o]->task.state;
    if (s == "queued" || s == "running") {
      ++o;
      continue;
    }
    jobs_.erase(*o);
    o = order_.erase(o);
    --finished;
  }
  start_ready();
}

bool AvatarJobs::pending_name(const std::string &name) const {
  std::lock_guard<std::mutex> l(lock_);
  for (const auto &[id, job] : jobs_)
    if (job->submitted && job->task.name == name &&
        (job->task.state == "queued" || job->task.state == "running"))
      return true;
  return false;
}

std::vector<AvatarTask> AvatarJobs::list() const {
  std::lock_guard<std::mutex> l(lock_);
  std::vector<AvatarTask> out;
  for (const auto &id : order_) out.push_back(jobs_.at(id)->task);
  return out;
}

bool AvatarJobs::find(const std::string &id, AvatarTask *out) const {
  std::lock_guard<std::mutex> l(lock_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || !it->second->submitted) return false;
  *out = it->second->task;
  return true;
}

std::string AvatarJobs::remove(const std::string &id) {
  std::shared_ptr<Job> job;
  std::string was;
  {
    std::lock_guard<std::mutex> l(lock_);
    auto it = jobs_.find(id);
    if (it == jobs_.end() || !it->second->submitted) return "";
    job = it->second;
    was = job->task.state;
    if (was == "running") {
      // Its thread sees the builder end, removes the work and starts the next.
      job->cancelled = true;
      if (job->process) g_subprocess_force_exit(job->process);
      return was;
    }
    jobs_.erase(it);
    order_.erase(std::find(order_.begin(), order_.end(), id));
  }
  std::error_code ec;
  fs::remove_all(job->work_dir, ec);
  return was;
}

void AvatarJobs::start_ready() {
  if (stopping_) return;
  unsigned running = 0;
  for (const auto &id : order_) running += jobs_[id]->task.state == "running";
  for (const auto &id : order_) {
    if (running >= concurrent_) break;
    auto job = jobs_[id];
    if (job->task.state != "queued") continue;
    job->task.state = "running";
    job->task.started_ms = unix_ms();
    ++running;
    threads_.emplace_back(&AvatarJobs::run, this, job);
  }
}

void AvatarJobs::run(std::shared_ptr<Job> job) {
  const AvatarTaskRequest &r = job->request;
  std::vector<std::string> args = {builder_,         "build",
                                   r.input,          job->work_dir + "/avatar",
                                   "--vae",          vae_,
                                   "--bbox-shift",   std::to_string(r.bbox_shift),
                                   "--extra-margin", std::to_string(r.extra_margin),
                                   "--source",       r.source,
                                   "--progress",     "--untrusted-input"};
  if (r.max_frames) {
    args.push_back("--max-frames");
    args.push_back(std::to_string(r.max_frames));
  }
  std::vector<const char *> argv;
  for (const auto &a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);

  GError *err = nullptr;
  GSubprocess *process = g_subprocess_newv(
      argv.data(),
      GSubprocessFlags(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE), &err);
  if (!process) {
    const std::string why = err ? err->message : "cannot start";
    if (err) g_error_free(err);
    finish(*job, false, "the avatar builder did not start: " + why);
    return;
  }
  {
    std::lock_guard<std::mutex> l(lock_);
    job->process = process;
    if (job->cancelled) g_subprocess_force_exit(process);
  }

  // Its output: progress lines, and a "talker-avatar: …" line when it fails.
  GDataInputStream *lines = g_data_input_stream_new(g_subprocess_get_stdout_pipe(process));
  std::string message;
  for (;;) {
    gsize length = 0;
    char *line = g_data_input_stream_read_line(lines, &length, nullptr, nullptr);
    if (!line) break;
    std::istringstream in(line);
    std::string word, stage;
    std::size_t done = 0, total = 0;
    if (in >> word >> stage >> done >> total && word == "progress") {
      std::lock_guard<std::mutex> l(lock_);
      job->task.stage = stage;
      job->task.done = done;
      job->task.total = total;
      for (const auto &s : kStages)
        if (stage == s.name)
          job->task.progress = s.start + s.share * (total ? double(done) / total : 0);
    } else if (g_str_has_prefix(line, "talker-avatar: ")) {
      message = line + 15;
    }
    g_free(line);
  }
  g_object_unref(lines);
  g_subprocess_wait(process, nullptr, nullptr);
  std::string error;
  if (!g_subprocess_get_if_exited(process))
    error = "the avatar builder was killed (signal " +
            std::to_string(g_subprocess_get_term_sig(process)) + ")";
  else if (g_subprocess_get_exit_status(process) != 0)
    error = message.empty() ? "the avatar builder failed (exit status " +
                                  std::to_string(g_subprocess_get_exit_status(process)) + ")"
                            : message;
  {
    std::lock_guard<std::mutex> l(lock_);
    job->process = nullptr;
  }
  g_object_unref(process);
  finish(*job, error.empty(), error);
}

void AvatarJobs::finish(Job &job, bool ok, const std::string &error) {
  std::error_code ec;
  std::string failure = error;
  bool cancelled;
  {
    std::lock_guard<std::mutex> l(lock_);
    cancelled = job.cancelled;
  }
  if (ok && !cancelled) {
    // Into place in one step: a session never sees half an avatar.
    const std::string target = avatars_ + "/" + job.task.name;
    if (fs::exists(fs::symlink_status(target)))
      failure = "name: an avatar named '" + job.task.name + "' appeared meanwhile";
    else if (fs::rename(job.work_dir + "/avatar", target, ec); ec)
      failure = "cannot move the avatar into place: " + ec.message();
  }
  fs::remove_all(job.work_dir, ec);
  std::lock_guard<std::mutex> l(lock_);
  job.task.finished_ms = unix_ms();
  if (cancelled) {
    job.task.state = "cancelled";
    // DELETE of a running task forgets it once the builder is gone.
    const std::string id = job.task.id;
    if (!stopping_) {
      order_.erase(std::find(order_.begin(), order_.end(), id));
      jobs_.erase(id);
    }
  } else if (ok && failure.empty()) {
    job.task.state = "done";
    job.task.progress = 1;
  } else {
    job.task.state = "failed";
    job.task.error = failure;
  }
  start_ready();
}

}  // namespace talker::server
