// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/nn/batch_scheduler.h"

#include <algorithm>
#include <vector>

namespace talker::nn {

BatchScheduler::BatchScheduler(RunFn run) : run_(std::move(run)) {
  worker_ = std::thread([this] { work(); });
}

BatchScheduler::~BatchScheduler() {
  {
    std::lock_guard<std::mutex> l(lock_);
    stopping_ = true;
  }
  wake_.notify_all();
  worker_.join();
  // Nobody holds the scheduler any more, so nobody waits on these; answer
  // them anyway rather than leave broken promises behind.
  for (auto &p : pending_) p.promise.set_value(torch::Tensor());
}

std::future<torch::Tensor> BatchScheduler::submit(Request request) {
  std::lock_guard<std::mutex> l(lock_);
  pending_.push_back(Pending{std::move(request), next_sequence_++, {}});
  auto future = pending_.back().promise.get_future();
  wake_.notify_all();
  return future;
}

BatchScheduler::Stats BatchScheduler::stats() const {
  std::lock_guard<std::mutex> l(lock_);
  return stats_;
}

void BatchScheduler::work() {
  std::unique_lock<std::mutex> l(lock_);
  for (;;) {
    wake_.wait(l, [&] { return stopping_ || !pending_.empty(); });
    if (stopping_) return;
    // Earliest deadline first; without deadlines, first come first served.
    std::sort(pending_.begin(), pending_.end(), [](const Pending &a, const Pending &b) {
      if (a.request.first_deadline != b.request.first_deadline)
        return a.request.first_deadline < b.request.first_deadline;
      return a.sequence < b.sequence;
    });
    // A request that cannot finish in time even if it ran now is skipped:
    // running it would only make the requests behind it late too.
    const auto now = Clock::now();
    for (auto it = pending_.begin(); it != pending_.end();) {
      const auto &r = it->request;
      const auto expected = expected_run(r.latents.size(0));
      if (r.last_deadline != Clock::time_point::max() && now + expected > r.last_deadline) {
        ++stats_.skipped_requests;
        stats_.skipped_frames += uint64_t(r.latents.size(0));
        it->promise.set_value(torch::Tensor());
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    if (pending_.empty()) continue;

    std::vector<Pending> run;
    int64_t frames = 0, limit = 0;
    // A merged run takes longer than each batch alone: a batch joins only if
    // the longer run still ends before the last frame of every member is due
    // (the head itself passed the skip rule above). Otherwise merging would
    // make whole runs late, their faces computed for nothing while the
    // frames leave without them. (Front frames due earlier leave faceless if
    // the run overruns them: the element keeps time while it waits.)
    auto earliest_due = Clock::time_point::max();
    for (auto it = pending_.begin(); it != pending_.end();) {
      const auto &r = it->request;
      const int64_t n = r.latents.size(0);
      const int64_t cap = run.empty() ? r.max_batch : std::min(limit, r.max_batch);
      // Only frames of one shape stack (avatars may differ in face size).
      const bool same_shape =
          run.empty() || (r.latents.sizes().slice(1) == run[0].request.latents.sizes().slice(1) &&
                          r.features.sizes().slice(1) == run[0].request.features.sizes().slice(1));
      const auto due = std::min(earliest_due, r.last_deadline);
      const bool in_time =
          run.empty() || due == Clock::time_point::max() || now + expected_run(frames + n) <= due;
      if (!run.empty() && (frames + n > cap || !same_shape || !in_time)) {
        ++it;
        continue;
      }
      limit = cap;
      frames += n;
      earliest_due = due;
      run.push_back(std::move(*it));
      it = pending_.erase(it);
    }
    l.unlock();

    std::vector<torch::Tensor> latents, features;
    for (auto &p : run) {
      latents.push_back(p.request.latents);
      features.push_back(p.request.features);
    }
    const auto start = Clock::now();
    try {
      torch::Tensor out = run.size() == 1 ? run_(latents[0], features[0])
                                          : run_(torch::cat(latents), torch::cat(features));
      int64_t offset = 0;
      for (auto &p : run) {
        const int64_t n = p.request.latents.size(0);
        p.promise.set_value(run.size() == 1 ? out : out.slice(0, offset, offset + n));
        offset += n;
      }
    } catch (...) {
      for (auto &p : run) p.promise.set_exception(std::current_exception());
    }
    const auto took = Clock::now() - start;

    l.lock();
    learn_run(frames, took);
    ++stats_.runs;
    stats_.frames += uint64_t(frames);
    if (run.size() > 1) ++stats_.merged_runs;
    stats_.largest_run = std::max(stats_.largest_run, frames);
  }
}

BatchScheduler::Clock::duration BatchScheduler::expected_run(int64_t frames) const {
  if (runs_seen_ == 0) return Clock::duration(0);  // nothing known: nothing is skipped
  const double var = mean_nn_ - mean_n_ * mean_n_;
  double b = var > 0.25 ? (mean_nt_ - mean_n_ * mean_t_) / var : mean_t_ / mean_n_;
  b = std::max(b, 0.0);
  const double a = std::max(mean_t_ - b * mean_n_, 0.0);
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>((a + b * double(frames)) * 1.25));
}

void BatchScheduler::learn_run(int64_t frames, Clock::duration took) {
  const double n = double(std::max<int64_t>(frames, 1));
  const double t = std::chrono::duration<double>(took).count();
  // Recent runs weigh most (about the last 20); the first one sets the means.
  const double w = runs_seen_ == 0 ? 1.0 : 0.05;
  runs_seen_ += 1;
  mean_n_ += w * (n - mean_n_);
  mean_t_ += w * (t - mean_t_);
  mean_nn_ += w * (n * n - mean_nn_);
  mean_nt_ += w * (n * t - mean_nt_);
}

}  // namespace talker::nn
