// SPDX-License-Identifier: LGPL-2.1-or-later
// One inference queue for every user of a model: requests (a session's batch
// of frames) from any number of sessions are merged into one model run, up to
// a maximum batch, earliest deadline first. On a GPU eight sessions then cost
// about one batch-8 run per frame time instead of eight batch-1 runs.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace talker::nn {

class BatchScheduler {
 public:
  using Clock = std::chrono::steady_clock;
  // Runs the model: inputs of n frames (dim 0) → outputs of n frames.
  using RunFn = std::function<torch::Tensor(const torch::Tensor &, const torch::Tensor &)>;

  struct Request {
    torch::Tensor latents, features;  // n frames each, same n
    // When the first and the last frame must be done; max(): no deadline
    // (offline), such requests run after those with one, in arrival order.
    Clock::time_point first_deadline = Clock::time_point::max();
    Clock::time_point last_deadline = Clock::time_point::max();
    // The most frames the merged run this request heads may hold; a request
    // larger than another's limit runs without it.
    int64_t max_batch = 1;
  };

  struct Stats {
    uint64_t runs = 0, frames = 0, merged_runs = 0;  // merged: more than one request
    uint64_t skipped_requests = 0, skipped_frames = 0;
    int64_t largest_run = 0;
  };

  explicit BatchScheduler(RunFn run);
  ~BatchScheduler();
  BatchScheduler(const BatchScheduler &) = delete;
  BatchScheduler &operator=(const BatchScheduler &) = delete;

  // The request's outputs, in order. Undefined (not an error) when the
  // request could no longer finish before its last deadline: its frames are
  // skipped so that nobody else's wait for it. Model errors arrive as the
  // future's exception, for every request of the failed run.
  std::future<torch::Tensor> submit(Request request);

  Stats stats() const;

 private:
  struct Pending {
    Request request;
    uint64_t sequence;
    std::promise<torch::Tensor> promise;
  };
  void work();

  RunFn run_;
  mutable std::mutex lock_;
  std::condition_variable wake_;
  std::deque<Pending> pending_;
  uint64_t next_sequence_ = 0;
  bool stopping_ = false;
  // What a run of n frames is expected to take, with a quarter's headroom:
  // a + b·n fitted to recent runs (exponentially weighted least squares).
  // Runs cost a fixed part plus a part per frame; a per-frame average alone
  // would overrate merged runs when runs are small and keep them small.
  Clock::duration expected_run(int64_t frames) const;
  void learn_run(int64_t frames, Clock::duration took);
  double runs_seen_ = 0, mean_n_ = 0, mean_t_ = 0, mean_nn_ = 0, mean_nt_ = 0;
  Stats stats_;
  std::thread worker_;
};

}  // namespace talker::nn
