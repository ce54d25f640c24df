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
      const auto expected = frame_cost_ * r.latents.size(0) * 5 / 4;
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
    for (auto it = pending_.begin(); it != pending_.end();) {
      const int64_t n = it->request.latents.size(0);
      const int64_t cap =
          run.empty() ? it->request.max_batch : std::min(limit, it->request.max_batch);
      // Only frames of one shape stack (avatars may differ in face size).
      const bool same_shape =
          run.empty() ||
          (it->request.latents.sizes().slice(1) == run[0].request.latents.sizes().slice(1) &&
           it->request.features.sizes().slice(1) == run[0].request.features.sizes().slice(1));
      if (!run.empty() && (frames + n > cap || !same_shape)) {
        ++it;
        continue;
      }
      limit = cap;
      frames += n;
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
    const auto per_frame = took / std::max<int64_t>(frames, 1);
    frame_cost_ = frame_cost_.count() ? (frame_cost_ * 3 + per_frame) / 4 : per_frame;
    ++stats_.runs;
    stats_.frames += uint64_t(frames);
    if (run.size() > 1) ++stats_.merged_runs;
    stats_.largest_run = std::max(stats_.largest_run, frames);
  }
}

}  // namespace talker::nn
