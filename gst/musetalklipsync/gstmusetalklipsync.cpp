// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-musetalklipsync
 *
 * MuseTalk lip-sync: per-frame whisper features (from whisperfeat) in,
 * generated 256×256 BGR faces out, one buffer per input buffer with the same
 * timestamps. Frames are batched (batch-size) and run through the UNet and
 * the VAE decoder on a thread of their own; frames whose features are GAP
 * skip the models and come out as idle (GAP) frames. Every output buffer
 * carries a TalkerFaceMeta: the avatar frame it belongs to (MuseTalk's
 * ping-pong cycle over the avatar) and whether it speaks.
 *
 * ... ! whisperfeat model=models/whisper/tiny.pt ! musetalklipsync avatar=avatars/demo
 *     unet=models/musetalkV15/unet.pth vae=models/sd-vae ! faceblend avatar=avatars/demo ! ...
 */
#include "gst/musetalklipsync/gstmusetalklipsync.h"

#include <gst/video/video.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "gst/common/face_meta.h"
#include "gst/common/gst_ptr.h"
#include "lib/avatar/avatar.h"
#include "lib/common/error.h"
#include "lib/common/shared_cache.h"
#include "lib/nn/batch_scheduler.h"
#include "lib/nn/device.h"
#include "lib/nn/musetalk.h"

GST_DEBUG_CATEGORY_STATIC(musetalklipsync_debug);
#define GST_CAT_DEFAULT musetalklipsync_debug

namespace nn = talker::nn;
using talker::avatar::AvatarLatents;

namespace {

enum class DType { Float32, Float16, BFloat16 };
enum class Decoder { SdVae, Taesd };

struct Settings {
  std::string avatar, unet, unet_config, vae;
  guint batch_size = 4;
  std::string device = "cpu";
  DType dtype = DType::Float32;
  Decoder decoder = Decoder::SdVae;
  bool qos = true;
  guint inference_latency_ms = 0;  // 0: measured when the models load
  guint shared_batch_size = 16;    // 0: this element runs its batches alone
  bool batch_invariant = false;
};

talker::SharedCache<nn::MuseTalkModel> &model_cache() {
  static talker::SharedCache<nn::MuseTalkModel> cache;
  return cache;
}
// One scheduler per model (and per batch-invariant choice): every element
// using those weights queues its batches there, so they run merged.
talker::SharedCache<nn::BatchScheduler> &scheduler_cache() {
  static talker::SharedCache<nn::BatchScheduler> cache;
  return cache;
}
talker::SharedCache<const AvatarLatents> &avatar_cache() {
  static talker::SharedCache<const AvatarLatents> cache;
  return cache;
}

// One queued input: a features buffer, or a serialized event kept in order.
struct Item {
  GstBuffer *buffer = nullptr;  // owned
  GstEvent *event = nullptr;    // owned
  torch::Tensor features;       // [tokens, width]; undefined for GAP frames
  gint64 avatar_frame = 0;
  GstClockTime running_time = GST_CLOCK_TIME_NONE;  // of the buffer's PTS
  // Speech whose features whisperfeat could not compute in time (DROPPABLE):
  // no model run, the last face is held.
  bool unencoded = false;
  bool gap() const { return !features.defined(); }
  void release() {
    if (buffer) gst_buffer_unref(buffer);
    if (event) gst_event_unref(event);
    buffer = nullptr;
    event = nullptr;
  }
};

struct LipSyncState {
  std::mutex settings_lock;
  Settings settings;

  Settings active;
  std::shared_ptr<nn::MuseTalkModel> model;
  std::shared_ptr<nn::BatchScheduler> scheduler;  // null: shared-batch-size=0
  std::shared_ptr<const AvatarLatents> avatar;
  int out_width = 256, out_height = 256;

  std::mutex lock;  // guards everything below
  std::condition_variable cond;
  std::deque<Item> queue;
  bool flushing = true;
  GstFlowReturn src_result = GST_FLOW_FLUSHING;
  gint64 frames_in = 0;
  int fps_num = 25, fps_den = 1;
  GstSegment segment;  // the input segment, for running times (streaming thread)
  // Inference cost per frame: a running average of recent batches' time
  // over their size (warm_cost: the warm-up's). While frames are skipped it
  // decays towards warm_cost, so a slow spell does not stop generation for good.
  GstClockTime frame_cost = 0, warm_cost = 0;
  // What the latency query reports for inference. Fixed once the models are
  // loaded so that the pipeline latency never creeps during a run.
  GstClockTime inference_budget = 0;
  // Live pipelines: the latency the sinks apply (LATENCY event) and whether
  // upstream is live. Together they give every frame a deadline.
  GstClockTime pipeline_latency = GST_CLOCK_TIME_NONE;
  bool upstream_live = false;
  // Counters for the stats property and QoS messages.
  guint64 generated = 0, skipped = 0, idle = 0, dropped = 0;
  GstClockTimeDiff worst_lateness = 0;  // of a generated frame against its deadline
};

// Time budget left before frames must leave for the sink: the share of a
// frame kept for faceblend and what follows it.
constexpr GstClockTime kDownstreamMargin = 10 * GST_MSECOND;

}  // namespace

struct _GstMuseTalkLipSync {
  GstElement parent;
  GstPad *sinkpad, *srcpad;
  LipSyncState *state;
};

G_DEFINE_TYPE(GstMuseTalkLipSync, gst_musetalk_lipsync, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(musetalklipsync, "musetalklipsync", GST_RANK_NONE,
                            GST_TYPE_MUSETALK_LIPSYNC);

enum {
  PROP_0,
  PROP_AVATAR,
  PROP_UNET,
  PROP_UNET_CONFIG,
  PROP_VAE,
  PROP_BATCH_SIZE,
  PROP_DEVICE,
  PROP_DTYPE,
  PROP_DECODER,
  PROP_QOS,
  PROP_INFERENCE_LATENCY_MS,
  PROP_SHARED_BATCH_SIZE,
  PROP_BATCH_INVARIANT,
  PROP_STATS,
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS(
        "application/x-talker-features, format=(string)F32LE, framerate=(fraction)[1/1, 120/1]"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("video/x-raw, format=(string)BGR, width=(int)[8, 4096], height=(int)[8, 4096], "
                    "framerate=(fraction)[1/1, 120/1]"));

#define GST_TYPE_MUSETALK_DECODER (musetalk_decoder_get_type())
static GType musetalk_decoder_get_type() {
  static gsize type = 0;
  static const GEnumValue values[] = {
      {int(Decoder::SdVae), "SD-VAE (sd-vae-ft-mse), MuseTalk's own", "sd-vae"},
      {int(Decoder::Taesd), "TAESD (AutoencoderTiny): ~18x fewer FLOPs, softer detail", "taesd"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstMuseTalkDecoder", values));
  return type;
}

#define GST_TYPE_MUSETALK_DTYPE (musetalk_dtype_get_type())
static GType musetalk_dtype_get_type() {
  static GType type = 0;
  static const GEnumValue values[] = {
      {int(DType::Float32), "32-bit float", "float32"},
      {int(DType::Float16), "16-bit float (CUDA only)", "float16"},
      {int(DType::BFloat16), "bfloat16 (CUDA; on the CPU fast only with AVX512-BF16/AMX)",
       "bfloat16"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstMuseTalkDType", values));
  return type;
}

static LipSyncState &state_of(GstMuseTalkLipSync *self) {
  return *self->state;
}

static std::string beside(const std::string &file, const char *name) {
  auto slash = file.rfind('/');
  return (slash == std::string::npos ? std::string(".") : file.substr(0, slash)) + "/" + name;
}

// Runs one batch of speech frames; returns faces uint8 [k, H, W, 3].
// The models' inputs for a batch: the avatar frames' latents and the features.
static std::pair<torch::Tensor, torch::Tensor> batch_inputs(
    const LipSyncState &st, const std::vector<const Item *> &speech) {
  std::vector<torch::Tensor> features, latents;
  for (const Item *it : speech) {
    features.push_back(it->features);
    latents.push_back(st.avatar->latents[it->avatar_frame]);
  }
  return {torch::stack(latents), torch::stack(features)};
}

static torch::Tensor infer(LipSyncState &st, const std::vector<const Item *> &speech) {
  auto [latents, features] = batch_inputs(st, speech);
  if (st.active.batch_invariant) return st.model->generate_each(latents, features);
  return st.model->generate(latents, features);
}

// Starts one batch's inference: queued at the shared scheduler (merged with
// other elements' batches), on a thread of its own (live, alone), or deferred
// to the caller's get(). `first`/`last`: the monotonic times the batch's first
// and last frames are due (max(): no deadline).
static std::future<torch::Tensor> start_inference(LipSyncState &st,
                                                  const std::vector<const Item *> &speech,
                                                  bool live,
                                                  nn::BatchScheduler::Clock::time_point first,
                                                  nn::BatchScheduler::Clock::time_point last) {
  if (!st.scheduler) {
    return std::async(live ? std::launch::async : std::launch::deferred,
                      [&st, speech] { return infer(st, speech); });
  }
  nn::BatchScheduler::Request r;
  std::tie(r.latents, r.features) = batch_inputs(st, speech);
  r.first_deadline = first;
  r.last_deadline = last;
  r.max_batch = std::max<int64_t>(st.active.shared_batch_size, int64_t(speech.size()));
  return st.scheduler->submit(std::move(r));
}

static bool load(GstMuseTalkLipSync *self) {
  auto &st = state_of(self);
  {
    std::lock_guard<std::mutex> l(st.settings_lock);
    st.active = st.settings;
  }
  Settings &s = st.active;
  for (auto [value, name] : {std::pair{&s.avatar, "avatar"}, {&s.unet, "unet"}, {&s.vae, "vae"}})
    if (value->empty()) {
      GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND, ("Property '%s' is not set", name),
                        ("musetalklipsync needs avatar, unet and vae"));
      return false;
    }
  if (s.unet_config.empty()) s.unet_config = beside(s.unet, "musetalk.json");
  try {
    const torch::Device device = nn::usable_device(s.device);
    const int threads = nn::apply_thread_policy();
    const auto dtype = s.dtype == DType::Float16    ? torch::kHalf
                       : s.dtype == DType::BFloat16 ? torch::kBFloat16
                                                    : torch::kFloat;
    const std::string decoder = s.decoder == Decoder::Taesd ? "taesd" : "sd-vae";
    std::string key = s.unet + "|" + s.unet_config + "|" + s.vae + "|" + device.str() + "|" +
                      std::to_string(int(s.dtype)) + "|" + decoder;
    st.model = model_cache().get(key, [&] {
      GST_INFO_OBJECT(self, "loading %s + %s on %s", s.unet.c_str(), s.vae.c_str(),
                      device.str().c_str());
      return std::make_shared<nn::MuseTalkModel>(
          nn::load_musetalk(s.unet, s.unet_config, s.vae, device, dtype, decoder));
    });
    if (s.shared_batch_size > 0) {
      auto model = st.model;
      const bool each = s.batch_invariant;
      st.scheduler = scheduler_cache().get(key + (each ? "|each" : ""), [&] {
        return std::make_shared<nn::BatchScheduler>(
            [model, each](const torch::Tensor &latents, const torch::Tensor &features) {
              return each ? model->generate_each(latents, features)
                          : model->generate(latents, features);
            });
      });
    }
    st.avatar =
        avatar_cache().get(s.avatar, [&] { return talker::avatar::load_avatar_latents(s.avatar); });
    const auto &lat = st.avatar->latents;
    if (lat.size(1) != st.model->unet->config.in_channels)
      throw talker::Error(s.avatar + ": latents have " + std::to_string(lat.size(1)) +
                          " channels, the UNet takes " +
                          std::to_string(st.model->unet->config.in_channels));
    st.out_height = int(lat.size(2) * 8);
    st.out_width = int(lat.size(3) * 8);
    // One warm-up frame: the first real batch is not slowed by lazy
    // initialisation, and the latency query starts from a measurement.
    Item probe;
    probe.features = torch::zeros({50, st.model->unet->config.cross_attention_dim});
    auto t0 = std::chrono::steady_clock::now();
    infer(st, {&probe});
    auto one =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    std::lock_guard<std::mutex> l(st.lock);
    st.frame_cost = st.warm_cost = GstClockTime(one);
    // Auto: a full batch at the warm-up cost with a quarter's headroom.
    st.inference_budget = s.inference_latency_ms ? s.inference_latency_ms * GST_MSECOND
                                                 : GstClockTime(one) * s.batch_size * 5 / 4;
    GST_INFO_OBJECT(
        self, "one frame in %.1f ms (%d intra-op threads); inference latency %" GST_TIME_FORMAT,
        one / 1e6, threads, GST_TIME_ARGS(st.inference_budget));
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Could not load the MuseTalk models or avatar"),
                      ("%s", e.what()));
    st.model.reset();
    st.scheduler.reset();
    st.avatar.reset();
    return false;
  }
  return true;
}

// Drops the queued frames and events. A flush keeps the sticky events that
// outlive it (stream-start, caps, tags): upstream does not send them again,
// and caps dropped before the task read them left the src pad without caps.
static void clear_queue(LipSyncState &st, bool flush = false) {
  std::deque<Item> kept;
  for (auto &it : st.queue) {
    if (flush && it.event && !it.buffer && GST_EVENT_IS_STICKY(it.event) &&
        GST_EVENT_TYPE(it.event) != GST_EVENT_SEGMENT &&
        GST_EVENT_TYPE(it.event) != GST_EVENT_EOS) {
      kept.push_back(it);
      continue;
    }
    it.release();
  }
  st.queue.swap(kept);
}

static size_t leading_buffers(const LipSyncState &st) {
  size_t n = 0;
  while (n < st.queue.size() && st.queue[n].buffer) ++n;
  return n;
}

// What `frames` frames are expected to cost, with a quarter's headroom: a
// batch that overruns its estimate would deliver late.
static GstClockTime expected_cost(const LipSyncState &st, size_t frames) {
  return st.frame_cost * frames * 5 / 4;
}

static bool deadlines_active(const LipSyncState &st) {
  return st.active.qos && st.upstream_live && GST_CLOCK_TIME_IS_VALID(st.pipeline_latency);
}

// The clock time a frame must leave by: when the sink renders it, less what
// faceblend and the rest need. NONE when the frame has no deadline.
static GstClockTime deadline_of(const LipSyncState &st, const Item &it, GstClockTime base) {
  if (!GST_CLOCK_TIME_IS_VALID(it.running_time)) return GST_CLOCK_TIME_NONE;
  const GstClockTime t = base + it.running_time + st.pipeline_latency;
  return t > kDownstreamMargin ? t - kDownstreamMargin : 0;
}

struct ClockNow {
  GstClockTime now = GST_CLOCK_TIME_NONE, base = 0;
  bool valid() const { return GST_CLOCK_TIME_IS_VALID(now); }
};
static ClockNow clock_now(GstMuseTalkLipSync *self) {
  ClockNow c;
  if (GstClock *clock = gst_element_get_clock(GST_ELEMENT(self))) {
    c.now = gst_clock_get_time(clock);
    c.base = gst_element_get_base_time(GST_ELEMENT(self));
    gst_object_unref(clock);
  }
  return c;
}

// How long the loop may still wait for a batch to fill before the first
// queued frame could no longer be generated in time; 0: run now. Only for
// live pipelines with deadlines.
static GstClockTimeDiff batch_slack(GstMuseTalkLipSync *self, const LipSyncState &st,
                                    size_t batch) {
  const ClockNow c = clock_now(self);
  const GstClockTime deadline = deadline_of(st, st.queue.front(), c.base);
  if (!c.valid() || !GST_CLOCK_TIME_IS_VALID(deadline)) return G_MAXINT64;
  return GST_CLOCK_DIFF(c.now + expected_cost(st, batch), deadline);
}

static GstBuffer *make_output(LipSyncState &st, const Item &in, const uint8_t *face,
                              bool speaking) {
  const gsize size = gsize(st.out_width) * st.out_height * 3;
  GstBuffer *out = gst_buffer_new_allocate(nullptr, size, nullptr);
  GstMapInfo map;
  gst_buffer_map(out, &map, GST_MAP_WRITE);
  if (face)
    memcpy(map.data, face, size);
  else
    memset(map.data, 0, size);
  gst_buffer_unmap(out, &map);
  gst_buffer_copy_into(out, in.buffer,
                       GstBufferCopyFlags(GST_BUFFER_COPY_TIMESTAMPS | GST_BUFFER_COPY_FLAGS), 0,
                       -1);
  if (face)
    GST_BUFFER_FLAG_UNSET(out, GST_BUFFER_FLAG_GAP);
  else
    GST_BUFFER_FLAG_SET(out, GST_BUFFER_FLAG_GAP);
  talker_buffer_add_face_meta(out, in.avatar_frame, speaking, face != nullptr);
  return out;
}

// Skipped frames: reported like a sink reports late buffers, with the
// running counts of generated and skipped frames.
static void post_skipped(GstMuseTalkLipSync *self, const Item &first, size_t count,
                         GstClockTimeDiff lateness) {
  auto &st = state_of(self);
  guint64 generated, skipped;
  {
    std::lock_guard<std::mutex> l(st.lock);
    generated = st.generated;
    skipped = st.skipped + st.dropped;
  }
  const GstClockTime pts = GST_BUFFER_PTS(first.buffer);
  GstMessage *msg =
      gst_message_new_qos(GST_OBJECT(self), TRUE, first.running_time,
                          gst_segment_to_stream_time(&st.segment, GST_FORMAT_TIME, pts), pts,
                          GST_BUFFER_DURATION(first.buffer) * count);
  // Proportion and quality: the share of speaking frames generated so far.
  const double fraction = generated + skipped ? double(generated) / (generated + skipped) : 1.0;
  gst_message_set_qos_values(msg, lateness, fraction, int(fraction * 1000000));
  gst_message_set_qos_stats(msg, GST_FORMAT_BUFFERS, generated, skipped);
  gst_element_post_message(GST_ELEMENT(self), msg);
}

static GstFlowReturn push_outputs(GstMuseTalkLipSync *self, std::vector<Item> &items,
                                  const torch::Tensor &faces, bool skipped) {
  auto &st = state_of(self);
  GstFlowReturn ret = GST_FLOW_OK;
  size_t k = 0;
  for (auto &it : items) {
    const uint8_t *face = nullptr;
    if (!it.gap() && !skipped) face = faces[int64_t(k++)].data_ptr<uint8_t>();
    GstBuffer *out = make_output(st, it, face, !it.gap());
    it.release();
    if (ret == GST_FLOW_OK)
      ret = gst_pad_push(self->srcpad, out);
    else
      gst_buffer_unref(out);
  }
  return ret;
}

static void pause_with(GstMuseTalkLipSync *self, GstFlowReturn ret) {
  auto &st = state_of(self);
  std::lock_guard<std::mutex> l(st.lock);
  st.src_result = ret;
  if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS) GST_ELEMENT_FLOW_ERROR(self, ret);
  gst_pad_pause_task(self->srcpad);
}

// Takes the next piece of work off the queue: an event, a run of idle frames,
// a batch of speech frames, or (live) speech frames that can no longer make
// their deadline. Waits while a batch may still fill. Empty when flushing.
enum class Work { None, Event, Idle, Batch, Skip, Drop };
static Work take_work(GstMuseTalkLipSync *self, std::vector<Item> &work,
                      GstClockTimeDiff *lateness) {
  auto &st = state_of(self);
  const size_t batch = st.active.batch_size;
  std::unique_lock<std::mutex> l(st.lock);
  for (;;) {
    if (st.flushing) return Work::None;
    if (!st.queue.empty() &&
        (st.queue.front().event || st.queue.front().gap() || st.queue.front().unencoded))
      break;
    const size_t n = leading_buffers(st);
    // A full batch, or a partial one that an event or idle frame closes.
    if (n >= batch || (n > 0 && n < st.queue.size())) break;
    if (n > 0 && deadlines_active(st)) {
      const GstClockTimeDiff slack = batch_slack(self, st, batch);
      if (slack <= 0) break;
      st.cond.wait_for(l, std::chrono::nanoseconds(std::min<GstClockTimeDiff>(slack, GST_SECOND)));
      continue;
    }
    st.cond.wait(l);
  }
  Work kind;
  auto take = [&] {
    work.push_back(st.queue.front());
    st.queue.pop_front();
  };
  if (deadlines_active(st)) {
    // Frames that arrive after their render time (upstream fell behind) are
    // dropped, as a sink would drop them: the picture holds, time goes on.
    const ClockNow c = clock_now(self);
    while (c.valid() && !st.queue.empty() && st.queue.front().buffer) {
      const GstClockTime deadline = deadline_of(st, st.queue.front(), c.base);
      if (!GST_CLOCK_TIME_IS_VALID(deadline) || c.now <= deadline + kDownstreamMargin) break;
      *lateness = std::max(*lateness, GST_CLOCK_DIFF(deadline, c.now));
      take();
    }
    if (!work.empty()) {
      st.dropped += work.size();
      st.cond.notify_all();
      return Work::Drop;
    }
  }
  if (st.queue.front().event) {
    take();
    kind = Work::Event;
  } else if (st.queue.front().gap()) {
    while (work.size() < batch && !st.queue.empty() && st.queue.front().buffer &&
           st.queue.front().gap())
      take();
    kind = Work::Idle;
  } else {
    size_t limit = batch;
    kind = Work::Batch;
    auto unencoded = [&] {
      return !st.queue.empty() && st.queue.front().buffer && st.queue.front().unencoded;
    };
    while (unencoded()) take();
    if (!work.empty()) {
      kind = Work::Skip;
    } else if (deadlines_active(st)) {
      const ClockNow c = clock_now(self);
      if (c.valid()) {
        // Frames that would be late even alone are skipped: the timeline
        // never waits for the model.
        auto deadline = [&] { return deadline_of(st, st.queue.front(), c.base); };
        const GstClockTime one = expected_cost(st, 1);
        while (!st.queue.empty() && st.queue.front().buffer && !st.queue.front().gap() &&
               (unencoded() || (GST_CLOCK_TIME_IS_VALID(deadline()) && c.now + one > deadline()))) {
          if (GST_CLOCK_TIME_IS_VALID(deadline()))
            *lateness = std::max(*lateness, GST_CLOCK_DIFF(deadline(), c.now + one));
          take();
        }
        if (!work.empty()) {
          kind = Work::Skip;
          // Try again sooner next time: the estimate may be stale.
          st.frame_cost = std::max(st.warm_cost, st.frame_cost * 7 / 8);
        } else if (GST_CLOCK_TIME_IS_VALID(deadline()) && one > 0) {
          // As many as fit before the first frame's deadline.
          auto fitting = [&] {
            return std::clamp<size_t>(GstClockTime(deadline() - c.now) / one, 1, batch);
          };
          auto speech_queued = [&] {
            size_t n = 0;
            while (n < st.queue.size() && st.queue[n].buffer && !st.queue[n].gap() &&
                   !st.queue[n].unencoded)
              ++n;
            return n;
          };
          // Behind: only a partial batch fits before the first frame's
          // deadline, yet more than a batch is queued. The frames behind are
          // due later, so skipping front frames until a whole batch fits keeps
          // the runs full instead of one frame each, and full runs generate
          // more frames a second (on a GPU by far; when sessions share runs,
          // a run of one frame each is what leaves them all behind).
          while (fitting() < batch && speech_queued() > batch &&
                 GST_CLOCK_TIME_IS_VALID(deadline())) {
            *lateness = std::max(*lateness, GST_CLOCK_DIFF(deadline(), c.now + one * batch));
            take();
          }
          if (!work.empty())
            kind = Work::Skip;
          else
            limit = fitting();
        }
      }
    }
    while (kind == Work::Batch && work.size() < limit && !st.queue.empty() &&
           st.queue.front().buffer && !st.queue.front().gap() && !unencoded())
      take();
  }
  if (kind == Work::Idle) st.idle += work.size();
  if (kind == Work::Skip) st.skipped += work.size();
  st.cond.notify_all();  // room in the queue for the streaming thread
  return kind;
}

// Live: while a batch is inferred on another thread, frames whose deadline
// comes first leave without a face (faceblend holds the last one), in order:
// the batch's own, then queued ones behind it. A batch that overruns its
// estimate then costs faces, never time. `next`: the batch's first frame not
// yet pushed.
static GstFlowReturn keep_time_while_inferring(GstMuseTalkLipSync *self,
                                               std::future<torch::Tensor> &result,
                                               std::vector<Item> &work, size_t &next) {
  auto &st = state_of(self);
  using namespace std::chrono;
  while (result.wait_for(seconds(0)) != std::future_status::ready) {
    const ClockNow c = clock_now(self);
    GstClockTime deadline = GST_CLOCK_TIME_NONE;
    {
      std::lock_guard<std::mutex> l(st.lock);
      if (!deadlines_active(st) || !c.valid() || st.flushing) break;
      if (next < work.size())
        deadline = deadline_of(st, work[next], c.base);
      else if (!st.queue.empty() && st.queue.front().buffer)
        deadline = deadline_of(st, st.queue.front(), c.base);
    }
    if (!GST_CLOCK_TIME_IS_VALID(deadline)) {
      result.wait_for(milliseconds(5));  // nothing due yet: look again for new frames
      continue;
    }
    if (c.now < deadline) {
      result.wait_for(nanoseconds(deadline - c.now));
      continue;
    }
    Item item;
    bool from_batch = next < work.size();
    if (from_batch) {
      item = work[next];
      work[next].buffer = nullptr;  // owned by `item` now
      ++next;
    } else {
      std::lock_guard<std::mutex> l(st.lock);
      if (st.queue.empty() || !st.queue.front().buffer) continue;
      item = st.queue.front();
      st.queue.pop_front();
      st.cond.notify_all();
    }
    {
      std::lock_guard<std::mutex> l(st.lock);
      if (item.gap())
        ++st.idle;
      else
        ++st.skipped;
    }
    if (!item.gap()) post_skipped(self, item, 1, GST_CLOCK_DIFF(deadline, c.now));
    GstBuffer *out = make_output(st, item, nullptr, !item.gap());
    item.release();
    GstFlowReturn ret = gst_pad_push(self->srcpad, out);
    if (ret != GST_FLOW_OK) {
      result.wait();
      return ret;
    }
  }
  result.wait();
  return GST_FLOW_OK;
}

static void lipsync_loop(gpointer user_data) {
  auto *self = GST_MUSETALK_LIPSYNC(user_data);
  auto &st = state_of(self);
  std::vector<Item> work;
  GstClockTimeDiff lateness = 0;
  const Work kind = take_work(self, work, &lateness);
  if (kind == Work::None) {
    gst_pad_pause_task(self->srcpad);
    return;
  }

  if (kind == Work::Event) {
    GstEvent *ev = work.front().event;
    const bool eos = GST_EVENT_TYPE(ev) == GST_EVENT_EOS;
    gst_pad_push_event(self->srcpad, ev);
    if (eos) {
      std::lock_guard<std::mutex> l(st.lock);
      st.src_result = GST_FLOW_EOS;
      gst_pad_pause_task(self->srcpad);
    }
    return;
  }

  if (kind == Work::Drop) {
    GST_DEBUG_OBJECT(self, "dropping %zu frames that came %" GST_STIME_FORMAT " late", work.size(),
                     GST_STIME_ARGS(lateness));
    post_skipped(self, work.front(), work.size(), lateness);
    for (auto &it : work) it.release();
    return;
  }
  if (kind == Work::Skip) {
    GST_DEBUG_OBJECT(self, "skipping %zu frames, %" GST_STIME_FORMAT " late", work.size(),
                     GST_STIME_ARGS(lateness));
    post_skipped(self, work.front(), work.size(), lateness);
    GstFlowReturn ret = push_outputs(self, work, {}, true);
    if (ret != GST_FLOW_OK) pause_with(self, ret);
    return;
  }

  torch::Tensor faces;
  size_t next = 0;  // work[next..] get the batch's faces
  if (kind == Work::Batch) {
    try {
      std::vector<const Item *> speech;
      for (const auto &it : work) speech.push_back(&it);
      auto t0 = std::chrono::steady_clock::now();
      bool live;
      GstClockTime first_deadline = GST_CLOCK_TIME_NONE, last_deadline = GST_CLOCK_TIME_NONE;
      const ClockNow c = clock_now(self);
      {
        std::lock_guard<std::mutex> l(st.lock);
        live = deadlines_active(st);
        if (live && c.valid()) {
          first_deadline = deadline_of(st, work.front(), c.base);
          last_deadline = deadline_of(st, work.back(), c.base);
        }
      }
      // Deadlines on the monotonic clock, which every pipeline's elements share.
      auto monotonic = [&](GstClockTime deadline) {
        if (!GST_CLOCK_TIME_IS_VALID(deadline)) return nn::BatchScheduler::Clock::time_point::max();
        return t0 + std::chrono::nanoseconds(GST_CLOCK_DIFF(c.now, deadline));
      };
      auto result =
          start_inference(st, speech, live, monotonic(first_deadline), monotonic(last_deadline));
      if (live) {
        GstFlowReturn ret = keep_time_while_inferring(self, result, work, next);
        faces = result.get();
        if (ret != GST_FLOW_OK) {
          for (auto &it : work) it.release();
          pause_with(self, ret);
          return;
        }
      } else {
        faces = result.get();
      }
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
      if (!faces.defined()) {
        // The shared scheduler found the batch could not be done in time:
        // its frames are skipped, like frames that would be late alone.
        const size_t late = work.size() - next;
        GST_DEBUG_OBJECT(self, "scheduler skipped %zu frames", late);
        {
          std::lock_guard<std::mutex> l(st.lock);
          st.skipped += late;
          st.frame_cost = (st.frame_cost * 3 + GstClockTime(ns) / work.size()) / 4;
        }
        if (late) post_skipped(self, work[next], late, GST_CLOCK_DIFF(last_deadline, c.now + ns));
        std::vector<Item> rest(work.begin() + next, work.end());
        GstFlowReturn ret = push_outputs(self, rest, {}, true);
        if (ret != GST_FLOW_OK) pause_with(self, ret);
        return;
      }
      GST_DEBUG_OBJECT(self, "batch of %zu speaking frames in %.1f ms, %zu of them too late",
                       speech.size(), ns / 1e6, next);
      const ClockNow done = clock_now(self);
      std::lock_guard<std::mutex> l(st.lock);
      st.generated += work.size() - next;
      st.frame_cost = (st.frame_cost * 3 + GstClockTime(ns) / work.size()) / 4;
      // Only a batch started with deadlines can be late: the first ones run
      // before the sinks' LATENCY event gives frames a render time.
      if (live && deadlines_active(st) && done.valid() && next < work.size()) {
        const GstClockTime deadline = deadline_of(st, work[next], done.base);
        if (GST_CLOCK_TIME_IS_VALID(deadline))
          st.worst_lateness = std::max(st.worst_lateness, GST_CLOCK_DIFF(deadline, done.now));
      }
    } catch (const std::exception &e) {
      GST_ELEMENT_ERROR(self, STREAM, FAILED, ("MuseTalk inference failed"), ("%s", e.what()));
      for (auto &it : work) it.release();
      std::lock_guard<std::mutex> l(st.lock);
      st.src_result = GST_FLOW_ERROR;
      gst_pad_pause_task(self->srcpad);
      return;
    }
  }
  std::vector<Item> rest(work.begin() + next, work.end());
  GstFlowReturn ret = push_outputs(self, rest, next ? faces.slice(0, int64_t(next)) : faces, false);
  if (ret != GST_FLOW_OK) pause_with(self, ret);
}

static gboolean set_caps(GstMuseTalkLipSync *self, GstCaps *caps) {
  auto &st = state_of(self);
  GstStructure *s = gst_caps_get_structure(caps, 0);
  int num = 0, den = 1, layers = 0, steps = 0, width = 0;
  gst_structure_get_fraction(s, "framerate", &num, &den);
  gst_structure_get_int(s, "layers", &layers);
  gst_structure_get_int(s, "steps", &steps);
  gst_structure_get_int(s, "width", &width);
  if (!st.model || width != st.model->unet->config.cross_attention_dim || layers * steps != 50) {
    GST_ELEMENT_ERROR(
        self, STREAM, FORMAT, ("Features do not fit the UNet"),
        ("got %d×%d tokens of width %d; MuseTalk takes 50 tokens of width %d (whisper-tiny, 5 "
         "layers × 10 steps)",
         layers, steps, width, st.model ? int(st.model->unet->config.cross_attention_dim) : 0));
    return FALSE;
  }
  {
    std::lock_guard<std::mutex> l(st.lock);
    st.fps_num = num;
    st.fps_den = den;
  }
  talker::gst::GstPtr<GstCaps> out(gst_caps_new_simple(
      "video/x-raw", "format", G_TYPE_STRING, "BGR", "width", G_TYPE_INT, st.out_width, "height",
      G_TYPE_INT, st.out_height, "framerate", GST_TYPE_FRACTION, num, den, "pixel-aspect-ratio",
      GST_TYPE_FRACTION, 1, 1, nullptr));
  Item item;
  item.event = gst_event_new_caps(out.get());
  std::lock_guard<std::mutex> l(st.lock);
  st.queue.push_back(item);
  st.cond.notify_all();
  return TRUE;
}

static GstFlowReturn lipsync_chain(GstPad *, GstObject *parent, GstBuffer *buffer) {
  auto *self = GST_MUSETALK_LIPSYNC(parent);
  auto &st = state_of(self);
  Item item;
  item.buffer = buffer;
  item.unencoded = !GST_BUFFER_FLAG_IS_SET(buffer, GST_BUFFER_FLAG_GAP) &&
                   GST_BUFFER_FLAG_IS_SET(buffer, GST_BUFFER_FLAG_DROPPABLE);
  if (item.unencoded) {
    item.features = torch::zeros({1});  // speech, but nothing to run the model on
  } else if (!GST_BUFFER_FLAG_IS_SET(buffer, GST_BUFFER_FLAG_GAP)) {
    GstMapInfo map;
    if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) {
      gst_buffer_unref(buffer);
      return GST_FLOW_ERROR;
    }
    const int64_t width = st.model->unet->config.cross_attention_dim;
    if (map.size != gsize(50 * width * sizeof(float))) {
      gst_buffer_unmap(buffer, &map);
      gst_buffer_unref(buffer);
      GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("Feature buffer of the wrong size"),
                        ("%zu bytes, expected %zu", map.size, size_t(50 * width * sizeof(float))));
      return GST_FLOW_ERROR;
    }
    item.features = torch::from_blob(map.data, {50, width}, torch::kFloat).clone();
    gst_buffer_unmap(buffer, &map);
  }
  std::unique_lock<std::mutex> l(st.lock);
  if (st.src_result != GST_FLOW_OK) {
    GstFlowReturn ret = st.src_result;
    l.unlock();
    gst_buffer_unref(buffer);
    return ret;
  }
  item.avatar_frame = st.avatar->cycle_index(st.frames_in++);
  item.running_time =
      gst_segment_to_running_time(&st.segment, GST_FORMAT_TIME, GST_BUFFER_PTS(buffer));
  // Bounded queue: when inference is slower than the input, hold upstream
  // back instead of growing without limit. Live, frames that cannot make it
  // are skipped instead, so the queue never holds more than the latency
  // covers; the bound leaves room for that and never stalls the stream.
  size_t limit = 2 * size_t(st.active.batch_size) + 2;
  if (deadlines_active(st) && st.fps_num > 0)
    limit += 2 * gst_util_uint64_scale(st.pipeline_latency, st.fps_num, GST_SECOND * st.fps_den);
  st.cond.wait(l, [&] { return st.flushing || leading_buffers(st) < limit; });
  if (st.flushing) {
    l.unlock();
    gst_buffer_unref(buffer);
    return GST_FLOW_FLUSHING;
  }
  st.queue.push_back(item);
  st.cond.notify_all();
  return st.src_result;
}

static gboolean lipsync_sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_MUSETALK_LIPSYNC(parent);
  auto &st = state_of(self);
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gst_event_parse_caps(event, &caps);
      gboolean ok = set_caps(self, caps);
      gst_event_unref(event);
      return ok;
    }
    case GST_EVENT_FLUSH_START: {
      {
        std::lock_guard<std::mutex> l(st.lock);
        st.flushing = true;
        st.src_result = GST_FLOW_FLUSHING;
        st.cond.notify_all();
      }
      gboolean ret = gst_pad_push_event(self->srcpad, event);
      gst_pad_pause_task(self->srcpad);
      return ret;
    }
    case GST_EVENT_SEGMENT: {
      std::lock_guard<std::mutex> l(st.lock);
      gst_event_copy_segment(event, &st.segment);
      break;
    }
    case GST_EVENT_FLUSH_STOP: {
      {
        std::lock_guard<std::mutex> l(st.lock);
        clear_queue(st, true);  // queued frames belong to the flushed position
        st.flushing = false;
        st.src_result = GST_FLOW_OK;
      }
      gboolean ret = gst_pad_push_event(self->srcpad, event);
      gst_pad_start_task(self->srcpad, lipsync_loop, self, nullptr);
      return ret;
    }
    default:
      break;
  }
  if (GST_EVENT_IS_SERIALIZED(event)) {
    // Keep events in order with the frames ahead of them.
    std::lock_guard<std::mutex> l(st.lock);
    if (st.flushing) {
      gst_event_unref(event);
      return FALSE;
    }
    Item item;
    item.event = event;
    st.queue.push_back(item);
    st.cond.notify_all();
    return TRUE;
  }
  return gst_pad_event_default(pad, parent, event);
}

static gboolean lipsync_src_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  auto *self = GST_MUSETALK_LIPSYNC(parent);
  auto &st = state_of(self);
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) {
    if (!gst_pad_peer_query(self->sinkpad, query)) return FALSE;
    gboolean live;
    GstClockTime min, max;
    gst_query_parse_latency(query, &live, &min, &max);
    GstClockTime ours;
    {
      std::lock_guard<std::mutex> l(st.lock);
      st.upstream_live = live;
      // A frame waits for its batch to fill, then for the batch's inference.
      ours = gst_util_uint64_scale(st.active.batch_size, GST_SECOND * st.fps_den, st.fps_num) +
             st.inference_budget;
    }
    GST_DEBUG_OBJECT(self, "latency %" GST_TIME_FORMAT, GST_TIME_ARGS(ours));
    min += ours;
    if (GST_CLOCK_TIME_IS_VALID(max)) max += ours;
    gst_query_set_latency(query, live, min, max);
    return TRUE;
  }
  return gst_pad_query_default(pad, parent, query);
}

static gboolean lipsync_src_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto &st = state_of(GST_MUSETALK_LIPSYNC(parent));
  if (GST_EVENT_TYPE(event) == GST_EVENT_LATENCY) {
    // The latency the sinks render with: with it every frame has a deadline.
    std::lock_guard<std::mutex> l(st.lock);
    gst_event_parse_latency(event, &st.pipeline_latency);
    GST_DEBUG_OBJECT(parent, "pipeline latency %" GST_TIME_FORMAT,
                     GST_TIME_ARGS(st.pipeline_latency));
  }
  return gst_pad_event_default(pad, parent, event);
}

static gboolean lipsync_src_activate_mode(GstPad *pad, GstObject *parent, GstPadMode mode,
                                          gboolean active) {
  auto *self = GST_MUSETALK_LIPSYNC(parent);
  auto &st = state_of(self);
  if (mode != GST_PAD_MODE_PUSH) return FALSE;
  if (active) {
    {
      std::lock_guard<std::mutex> l(st.lock);
      st.flushing = false;
      st.src_result = GST_FLOW_OK;
      st.frames_in = 0;
      st.generated = st.skipped = st.idle = st.dropped = 0;
      st.worst_lateness = 0;
      st.pipeline_latency = GST_CLOCK_TIME_NONE;
      gst_segment_init(&st.segment, GST_FORMAT_TIME);
    }
    return gst_pad_start_task(pad, lipsync_loop, self, nullptr);
  }
  {
    std::lock_guard<std::mutex> l(st.lock);
    st.flushing = true;
    st.src_result = GST_FLOW_FLUSHING;
    st.cond.notify_all();
  }
  gboolean ok = gst_pad_stop_task(pad);
  std::lock_guard<std::mutex> l(st.lock);
  clear_queue(st);
  return ok;
}

static GstStateChangeReturn lipsync_change_state(GstElement *element, GstStateChange transition) {
  auto *self = GST_MUSETALK_LIPSYNC(element);
  auto &st = state_of(self);
  if (transition == GST_STATE_CHANGE_NULL_TO_READY && !load(self)) return GST_STATE_CHANGE_FAILURE;
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_musetalk_lipsync_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_READY_TO_NULL) {
    st.scheduler.reset();
    st.model.reset();
    st.avatar.reset();
  }
  return ret;
}

static void lipsync_set_property(GObject *object, guint id, const GValue *value,
                                 GParamSpec *pspec) {
  auto &st = state_of(GST_MUSETALK_LIPSYNC(object));
  std::lock_guard<std::mutex> l(st.settings_lock);
  Settings &s = st.settings;
  auto str = [&] {
    return std::string(g_value_get_string(value) ? g_value_get_string(value) : "");
  };
  switch (id) {
    case PROP_AVATAR:
      s.avatar = str();
      break;
    case PROP_UNET:
      s.unet = str();
      break;
    case PROP_UNET_CONFIG:
      s.unet_config = str();
      break;
    case PROP_VAE:
      s.vae = str();
      break;
    case PROP_BATCH_SIZE:
      s.batch_size = g_value_get_uint(value);
      break;
    case PROP_DEVICE: {
      if (auto name = nn::canonical_device(str()))
        s.device = *name;
      else
        g_warning("musetalklipsync: invalid device '%s' (expected cpu, cuda or cuda:N)",
                  str().c_str());
      break;
    }
    case PROP_DTYPE:
      s.dtype = DType(g_value_get_enum(value));
      break;
    case PROP_DECODER:
      s.decoder = Decoder(g_value_get_enum(value));
      break;
    case PROP_QOS:
      s.qos = g_value_get_boolean(value);
      break;
    case PROP_INFERENCE_LATENCY_MS:
      s.inference_latency_ms = g_value_get_uint(value);
      break;
    case PROP_SHARED_BATCH_SIZE:
      s.shared_batch_size = g_value_get_uint(value);
      break;
    case PROP_BATCH_INVARIANT:
      s.batch_invariant = g_value_get_boolean(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static GstStructure *make_stats(LipSyncState &st) {
  std::lock_guard<std::mutex> l(st.lock);
  const guint64 speech = st.generated + st.skipped;
  nn::BatchScheduler::Stats shared;
  if (st.scheduler) shared = st.scheduler->stats();
  return gst_structure_new(
      "musetalklipsync-stats", "frames-generated", G_TYPE_UINT64, st.generated, "frames-skipped",
      G_TYPE_UINT64, st.skipped, "frames-idle", G_TYPE_UINT64, st.idle, "frames-dropped",
      G_TYPE_UINT64, st.dropped, "generated-fraction", G_TYPE_DOUBLE,
      speech ? double(st.generated) / speech : 1.0, "frame-cost-ms", G_TYPE_DOUBLE,
      st.frame_cost / 1e6, "inference-latency-ms", G_TYPE_DOUBLE, st.inference_budget / 1e6,
      "worst-lateness-ms", G_TYPE_DOUBLE, st.worst_lateness / 1e6, "shared-runs", G_TYPE_UINT64,
      guint64(shared.runs), "shared-frames", G_TYPE_UINT64, guint64(shared.frames),
      "shared-merged-runs", G_TYPE_UINT64, guint64(shared.merged_runs), "shared-largest-run",
      G_TYPE_INT64, gint64(shared.largest_run), "shared-skipped-frames", G_TYPE_UINT64,
      guint64(shared.skipped_frames), nullptr);
}

static void lipsync_get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  auto &st = state_of(GST_MUSETALK_LIPSYNC(object));
  if (id == PROP_STATS) {
    g_value_take_boxed(value, make_stats(st));
    return;
  }
  std::lock_guard<std::mutex> l(st.settings_lock);
  const Settings &s = st.settings;
  switch (id) {
    case PROP_AVATAR:
      g_value_set_string(value, s.avatar.c_str());
      break;
    case PROP_UNET:
      g_value_set_string(value, s.unet.c_str());
      break;
    case PROP_UNET_CONFIG:
      g_value_set_string(value, s.unet_config.c_str());
      break;
    case PROP_VAE:
      g_value_set_string(value, s.vae.c_str());
      break;
    case PROP_BATCH_SIZE:
      g_value_set_uint(value, s.batch_size);
      break;
    case PROP_DEVICE:
      g_value_set_string(value, s.device.c_str());
      break;
    case PROP_DTYPE:
      g_value_set_enum(value, int(s.dtype));
      break;
    case PROP_DECODER:
      g_value_set_enum(value, int(s.decoder));
      break;
    case PROP_QOS:
      g_value_set_boolean(value, s.qos);
      break;
    case PROP_INFERENCE_LATENCY_MS:
      g_value_set_uint(value, s.inference_latency_ms);
      break;
    case PROP_SHARED_BATCH_SIZE:
      g_value_set_uint(value, s.shared_batch_size);
      break;
    case PROP_BATCH_INVARIANT:
      g_value_set_boolean(value, s.batch_invariant);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void lipsync_finalize(GObject *object) {
  delete GST_MUSETALK_LIPSYNC(object)->state;
  G_OBJECT_CLASS(gst_musetalk_lipsync_parent_class)->finalize(object);
}

static void gst_musetalk_lipsync_class_init(GstMuseTalkLipSyncClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = lipsync_set_property;
  gobject_class->get_property = lipsync_get_property;
  gobject_class->finalize = lipsync_finalize;
  element_class->change_state = lipsync_change_state;
  const auto flags =
      GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_AVATAR,
      g_param_spec_string("avatar", "Avatar",
                          "Avatar folder (avatar.json, latents.safetensors: docs/avatar.md)", "",
                          flags));
  g_object_class_install_property(
      gobject_class, PROP_UNET,
      g_param_spec_string(
          "unet", "UNet",
          "MuseTalk UNet weights: musetalkV15/unet.pth (v1.5) or musetalk/pytorch_model.bin (v1.0)",
          "", flags));
  g_object_class_install_property(
      gobject_class, PROP_UNET_CONFIG,
      g_param_spec_string("unet-config", "UNet config",
                          "UNet config JSON; empty: musetalk.json beside the weights", "", flags));
  g_object_class_install_property(
      gobject_class, PROP_VAE,
      g_param_spec_string("vae", "VAE",
                          "The latent decoder's weights: the VAE folder (sd-vae-ft-mse: "
                          "config.json + diffusion_pytorch_model.bin/.safetensors), or with "
                          "decoder=taesd a TAESD AutoencoderTiny folder or taesd_decoder.pth",
                          "", flags));
  g_object_class_install_property(
      gobject_class, PROP_BATCH_SIZE,
      g_param_spec_uint("batch-size", "Batch size",
                        "Frames per inference; each adds one frame of latency, larger "
                        "batches use the device better",
                        1, 64, 4, flags));
  g_object_class_install_property(
      gobject_class, PROP_DEVICE,
      g_param_spec_string("device", "Device", "Where the models run: cpu, cuda or cuda:N", "cpu",
                          flags));
  g_object_class_install_property(
      gobject_class, PROP_DTYPE,
      g_param_spec_enum("dtype", "Data type",
                        "Model precision: float16 needs a CUDA device; bfloat16 runs anywhere "
                        "(faces within a few levels of float32's, see docs)",
                        GST_TYPE_MUSETALK_DTYPE, int(DType::Float32), flags));
  g_object_class_install_property(
      gobject_class, PROP_DECODER,
      g_param_spec_enum("decoder", "Decoder",
                        "What turns the UNet's latents into faces: sd-vae (MuseTalk's, ~622 GFLOP "
                        "a 256x256 face) or taesd (~35 GFLOP; softer fine detail, may flicker); "
                        "vae names its weights",
                        GST_TYPE_MUSETALK_DECODER, int(Decoder::SdVae), flags));
  g_object_class_install_property(
      gobject_class, PROP_QOS,
      g_param_spec_boolean(
          "qos", "QoS",
          "Live pipelines: skip the models for speaking frames that could not be generated before "
          "their render time (running time + pipeline latency), so the video never falls behind "
          "the audio; skipped frames carry no face and faceblend holds the last one. Each skip "
          "posts a QoS message. Off: every frame is generated, however late",
          TRUE, GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property(
      gobject_class, PROP_INFERENCE_LATENCY_MS,
      g_param_spec_uint(
          "inference-latency-ms", "Inference latency (ms)",
          "Time allowed for one batch's inference, in milliseconds, reported in the latency query "
          "on top of the batch's own duration. 0 (default): a full batch at the cost measured on "
          "a warm-up frame when the models load, plus 25 %. Fixed for the run, so the pipeline "
          "latency never creeps; when inference is slower, frames are skipped (see qos) and "
          "batches shrink to fit",
          0, 60000, 0, flags));
  g_object_class_install_property(
      gobject_class, PROP_SHARED_BATCH_SIZE,
      g_param_spec_uint(
          "shared-batch-size", "Shared batch size",
          "The most frames one model run may hold when musetalklipsync elements in this process "
          "use the same models (unet, vae, decoder, device, dtype): their batches queue at one "
          "scheduler and run merged, earliest deadline first, a batch that can no longer be done "
          "in time skipped instead of delaying the others. A session alone runs as without "
          "sharing. 0: this element's batches run on their own",
          0, 256, 16, flags));
  g_object_class_install_property(
      gobject_class, PROP_BATCH_INVARIANT,
      g_param_spec_boolean(
          "batch-invariant", "Batch-invariant",
          "Run the models one frame at a time inside each batch, so that a face never depends on "
          "the frames it was batched with (CPU BLAS and oneDNN results differ in the last bits "
          "with the batch size, which can move a pixel by one). Costs what batching saves on the "
          "CPU; for reproducible output and tests",
          FALSE, flags));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed(
          "stats", "Statistics",
          "Counters since the element started: frames-generated, frames-skipped (late, see qos), "
          "frames-idle (GAP in), frames-dropped (arrived after their render time: not pushed), "
          "generated-fraction (generated / speaking frames), frame-cost-ms "
          "(current estimate per frame), inference-latency-ms (reported), worst-lateness-ms (the "
          "latest a generated frame was ready after its deadline; 0: never late); and, for the "
          "scheduler shared by every element on the same models (shared-batch-size), "
          "shared-runs, shared-frames, shared-merged-runs (runs holding more than one batch), "
          "shared-largest-run (frames) and shared-skipped-frames",
          GST_TYPE_STRUCTURE, GParamFlags(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "MuseTalk lip-sync", "Filter/Video/Generator",
      "Generates lip-synced faces from whisper features with MuseTalk's UNet and VAE",
      "gst-talker developers");
  gst_type_mark_as_plugin_api(GST_TYPE_MUSETALK_DTYPE, GstPluginAPIFlags(0));
  GST_DEBUG_CATEGORY_INIT(musetalklipsync_debug, "musetalklipsync", 0, "MuseTalk lip-sync");
}

static void gst_musetalk_lipsync_init(GstMuseTalkLipSync *self) {
  self->state = new LipSyncState();
  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, lipsync_chain);
  gst_pad_set_event_function(self->sinkpad, lipsync_sink_event);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_query_function(self->srcpad, lipsync_src_query);
  gst_pad_set_event_function(self->srcpad, lipsync_src_event);
  gst_pad_set_activatemode_function(self->srcpad, lipsync_src_activate_mode);
  gst_pad_use_fixed_caps(self->srcpad);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}
