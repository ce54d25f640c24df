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

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "gst/common/face_meta.h"
#include "gst/common/gst_ptr.h"
#include "lib/avatar/avatar.h"
#include "lib/common/error.h"
#include "lib/common/shared_cache.h"
#include "lib/nn/device.h"
#include "lib/nn/musetalk.h"

GST_DEBUG_CATEGORY_STATIC(musetalklipsync_debug);
#define GST_CAT_DEFAULT musetalklipsync_debug

namespace nn = talker::nn;
using talker::avatar::AvatarLatents;

namespace {

enum class DType { Float32, Float16 };

struct Settings {
  std::string avatar, unet, unet_config, vae;
  guint batch_size = 4;
  std::string device = "cpu";
  DType dtype = DType::Float32;
};

talker::SharedCache<nn::MuseTalkModel> &model_cache() {
  static talker::SharedCache<nn::MuseTalkModel> cache;
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
  std::shared_ptr<const AvatarLatents> avatar;
  int out_width = 256, out_height = 256;

  std::mutex lock;  // guards everything below
  std::condition_variable cond;
  std::deque<Item> queue;
  bool flushing = true;
  GstFlowReturn src_result = GST_FLOW_FLUSHING;
  gint64 frames_in = 0;
  int fps_num = 25, fps_den = 1;
  GstClockTime batch_inference = 0;  // measured, longest recent batch
  GstClockTime reported_inference = 0;
};

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
  PROP_DTYPE
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS(
        "application/x-talker-features, format=(string)F32LE, framerate=(fraction)[1/1, 120/1]"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("video/x-raw, format=(string)BGR, width=(int)[8, 4096], height=(int)[8, 4096], "
                    "framerate=(fraction)[1/1, 120/1]"));

#define GST_TYPE_MUSETALK_DTYPE (musetalk_dtype_get_type())
static GType musetalk_dtype_get_type() {
  static GType type = 0;
  static const GEnumValue values[] = {{int(DType::Float32), "32-bit float", "float32"},
                                      {int(DType::Float16), "16-bit float (CUDA only)", "float16"},
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
static torch::Tensor infer(LipSyncState &st, const std::vector<const Item *> &speech) {
  std::vector<torch::Tensor> features, latents;
  for (const Item *it : speech) {
    features.push_back(it->features);
    latents.push_back(st.avatar->latents[it->avatar_frame]);
  }
  return st.model->generate(torch::stack(latents), torch::stack(features));
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
    const auto dtype = s.dtype == DType::Float16 ? torch::kHalf : torch::kFloat;
    std::string key = s.unet + "|" + s.unet_config + "|" + s.vae + "|" + device.str() + "|" +
                      std::to_string(int(s.dtype));
    st.model = model_cache().get(key, [&] {
      GST_INFO_OBJECT(self, "loading %s + %s on %s", s.unet.c_str(), s.vae.c_str(),
                      device.str().c_str());
      return std::make_shared<nn::MuseTalkModel>(
          nn::load_musetalk(s.unet, s.unet_config, s.vae, device, dtype));
    });
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
    st.batch_inference = st.reported_inference = GstClockTime(one) * s.batch_size;
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Could not load the MuseTalk models or avatar"),
                      ("%s", e.what()));
    st.model.reset();
    st.avatar.reset();
    return false;
  }
  return true;
}

static void clear_queue(LipSyncState &st) {
  for (auto &it : st.queue) it.release();
  st.queue.clear();
}

static size_t leading_buffers(const LipSyncState &st) {
  size_t n = 0;
  while (n < st.queue.size() && st.queue[n].buffer) ++n;
  return n;
}

// Work is ready: an event at the front, idle frames at the front (they need
// no model), a full batch, or a partial batch that an event (EOS) closes.
static bool work_ready(const LipSyncState &st, size_t batch) {
  if (st.queue.empty()) return false;
  if (st.queue.front().event || st.queue.front().gap()) return true;
  size_t n = leading_buffers(st);
  return n >= batch || n < st.queue.size();
}

static GstBuffer *make_output(LipSyncState &st, const Item &in, const uint8_t *face) {
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
  talker_buffer_add_face_meta(out, in.avatar_frame, face != nullptr);
  return out;
}

static void lipsync_loop(gpointer user_data) {
  auto *self = GST_MUSETALK_LIPSYNC(user_data);
  auto &st = state_of(self);
  const size_t batch = st.active.batch_size;
  std::vector<Item> work;
  {
    std::unique_lock<std::mutex> l(st.lock);
    st.cond.wait(l, [&] { return st.flushing || work_ready(st, batch); });
    if (st.flushing) {
      l.unlock();
      gst_pad_pause_task(self->srcpad);
      return;
    }
    if (st.queue.front().event) {
      work.push_back(st.queue.front());
      st.queue.pop_front();
    } else {
      const bool idle = st.queue.front().gap();
      while (work.size() < batch && !st.queue.empty() && st.queue.front().buffer &&
             (!idle || st.queue.front().gap())) {
        work.push_back(st.queue.front());
        st.queue.pop_front();
      }
    }
    st.cond.notify_all();  // room in the queue for the streaming thread
  }

  if (work.front().event) {
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

  std::vector<const Item *> speech;
  for (const auto &it : work)
    if (!it.gap()) speech.push_back(&it);
  torch::Tensor faces;
  if (!speech.empty()) {
    try {
      auto t0 = std::chrono::steady_clock::now();
      faces = infer(st, speech);
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
      GST_DEBUG_OBJECT(self, "batch of %zu speaking frames in %.1f ms", speech.size(), ns / 1e6);
      bool post_latency = false;
      {
        std::lock_guard<std::mutex> l(st.lock);
        // Track the slowest recent batch; a slower one than the latency
        // reported so far makes the pipeline ask again.
        st.batch_inference = std::max<GstClockTime>(GstClockTime(ns), st.batch_inference * 15 / 16);
        if (st.batch_inference > st.reported_inference + 10 * GST_MSECOND) {
          st.reported_inference = st.batch_inference;
          post_latency = true;
        }
      }
      if (post_latency)
        gst_element_post_message(GST_ELEMENT(self), gst_message_new_latency(GST_OBJECT(self)));
    } catch (const std::exception &e) {
      GST_ELEMENT_ERROR(self, STREAM, FAILED, ("MuseTalk inference failed"), ("%s", e.what()));
      for (auto &it : work) it.release();
      std::lock_guard<std::mutex> l(st.lock);
      st.src_result = GST_FLOW_ERROR;
      gst_pad_pause_task(self->srcpad);
      return;
    }
  }

  GstFlowReturn ret = GST_FLOW_OK;
  size_t k = 0;
  for (auto &it : work) {
    const uint8_t *face = nullptr;
    if (!it.gap()) face = faces[int64_t(k++)].data_ptr<uint8_t>();
    GstBuffer *out = make_output(st, it, face);
    it.release();
    if (ret == GST_FLOW_OK)
      ret = gst_pad_push(self->srcpad, out);
    else
      gst_buffer_unref(out);
  }
  if (ret != GST_FLOW_OK) {
    std::lock_guard<std::mutex> l(st.lock);
    st.src_result = ret;
    if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS) GST_ELEMENT_FLOW_ERROR(self, ret);
    gst_pad_pause_task(self->srcpad);
  }
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
  if (!GST_BUFFER_FLAG_IS_SET(buffer, GST_BUFFER_FLAG_GAP)) {
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
  // Bounded queue: when inference is slower than the input, hold upstream
  // back instead of growing without limit.
  const size_t limit = 2 * size_t(st.active.batch_size) + 2;
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
    case GST_EVENT_FLUSH_STOP: {
      {
        std::lock_guard<std::mutex> l(st.lock);
        clear_queue(st);  // queued frames belong to the flushed position
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
      // A frame waits for its batch to fill, then for the batch's inference.
      ours = gst_util_uint64_scale(st.active.batch_size, GST_SECOND * st.fps_den, st.fps_num) +
             st.reported_inference;
    }
    GST_DEBUG_OBJECT(self, "latency %" GST_TIME_FORMAT, GST_TIME_ARGS(ours));
    min += ours;
    if (GST_CLOCK_TIME_IS_VALID(max)) max += ours;
    gst_query_set_latency(query, live, min, max);
    return TRUE;
  }
  return gst_pad_query_default(pad, parent, query);
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
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void lipsync_get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  auto &st = state_of(GST_MUSETALK_LIPSYNC(object));
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
                          "VAE model folder (sd-vae-ft-mse: config.json + "
                          "diffusion_pytorch_model.bin/.safetensors)",
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
      g_param_spec_enum("dtype", "Data type", "Model precision; float16 needs a CUDA device",
                        GST_TYPE_MUSETALK_DTYPE, int(DType::Float32), flags));
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
  gst_pad_set_activatemode_function(self->srcpad, lipsync_src_activate_mode);
  gst_pad_use_fixed_caps(self->srcpad);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}
