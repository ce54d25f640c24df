// SPDX-License-Identifier: LGPL-2.1-or-later
/**
 * SECTION:element-talkinghead
 *
 * Speech in, talking-head video out: a bin of whisperfeat ! musetalklipsync
 * ! faceblend whose properties are the children's, set once (avatar and
 * device go to every child that has them). Live pipelines get the children's
 * degrade rule and latency reporting unchanged.
 *
 * gst-launch-1.0 talkertts text="Hello" ! tee name=t \
 *   t. ! queue ! talkinghead avatar=avatars/demo whisper-model=models/whisper/tiny.pt \
 *        unet=models/musetalkV15/unet.pth vae=models/sd-vae ! videoconvert ! autovideosink \
 *   t. ! queue ! audioconvert ! audioresample ! autoaudiosink
 */
#include "gst/talkinghead/gsttalkinghead.h"

#include <string>
#include <vector>

#include "gst/faceblend/gstfaceblend.h"
#include "gst/musetalklipsync/gstmusetalklipsync.h"
#include "gst/whisperfeat/gstwhisperfeat.h"

GST_DEBUG_CATEGORY_STATIC(talkinghead_debug);
#define GST_CAT_DEFAULT talkinghead_debug

namespace {

enum Child { kWhisper = 1, kLipSync = 2, kBlend = 4 };

// A bin property: which children take it, under which name.
struct Proxy {
  const char *name;
  int children;
  const char *child_property;   // the children's name for it
  const char *blurb = nullptr;  // when the first child's does not fit the bin
};

const Proxy kProxies[] = {
    {"avatar", kLipSync | kBlend, "avatar"},
    {"device", kWhisper | kLipSync, "device",
     "Where the models run (whisperfeat and musetalklipsync): cpu, cuda or cuda:N"},
    {"whisper-model", kWhisper, "model"},
    {"layout", kWhisper, "layout"},
    {"mode", kWhisper, "mode"},
    {"context-ms", kWhisper, "context-ms"},
    {"lookahead-ms", kWhisper, "lookahead-ms"},
    {"hop-frames", kWhisper, "hop-frames"},
    {"whisper-padding", kWhisper, "whisper-padding"},
    {"encoder-latency-ms", kWhisper, "encoder-latency-ms"},
    {"gap-threshold-db", kWhisper, "gap-threshold-db"},
    {"unet", kLipSync, "unet"},
    {"unet-config", kLipSync, "unet-config"},
    {"vae", kLipSync, "vae"},
    {"batch-size", kLipSync, "batch-size"},
    {"dtype", kLipSync, "dtype"},
    {"decoder", kLipSync, "decoder"},
    {"qos", kWhisper | kLipSync, "qos",
     "Live: keep time when the models cannot keep up. whisperfeat sends frames it can no longer "
     "encode in time without features; musetalklipsync skips the models for frames that cannot "
     "be ready by their render time (QoS messages); faceblend holds the last face. Off: every "
     "frame is computed, however late"},
    {"inference-latency-ms", kLipSync, "inference-latency-ms"},
    {"shared-batch-size", kLipSync, "shared-batch-size"},
    {"batch-invariant", kLipSync, "batch-invariant"},
    {"stats", kLipSync, "stats"},
    {"transition-ms", kBlend, "transition-ms"},
};

GType child_type(int child) {
  return child == kWhisper   ? GST_TYPE_WHISPER_FEAT
         : child == kLipSync ? GST_TYPE_MUSETALK_LIPSYNC
                             : GST_TYPE_FACE_BLEND;
}

int first_child(int children) {
  for (int c : {kWhisper, kLipSync, kBlend})
    if (children & c) return c;
  return kWhisper;
}

// The bin's own pspec for a child's: same type, range, default and text,
// under the bin's name.
GParamSpec *proxy_pspec(const Proxy &p) {
  auto *klass = G_OBJECT_CLASS(g_type_class_ref(child_type(first_child(p.children))));
  GParamSpec *c = g_object_class_find_property(klass, p.child_property);
  g_type_class_unref(klass);
  g_assert(c);
  const char *nick = g_param_spec_get_nick(c),
             *blurb = p.blurb ? p.blurb : g_param_spec_get_blurb(c);
  const auto flags = GParamFlags(
      (c->flags & (G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY | GST_PARAM_MUTABLE_PLAYING)) |
      G_PARAM_STATIC_STRINGS);
  if (G_IS_PARAM_SPEC_STRING(c))
    return g_param_spec_string(p.name, nick, blurb, G_PARAM_SPEC_STRING(c)->default_value, flags);
  if (G_IS_PARAM_SPEC_UINT(c)) {
    auto *u = G_PARAM_SPEC_UINT(c);
    return g_param_spec_uint(p.name, nick, blurb, u->minimum, u->maximum, u->default_value, flags);
  }
  if (G_IS_PARAM_SPEC_DOUBLE(c)) {
    auto *d = G_PARAM_SPEC_DOUBLE(c);
    return g_param_spec_double(p.name, nick, blurb, d->minimum, d->maximum, d->default_value,
                               flags);
  }
  if (G_IS_PARAM_SPEC_BOOLEAN(c))
    return g_param_spec_boolean(p.name, nick, blurb, G_PARAM_SPEC_BOOLEAN(c)->default_value, flags);
  if (G_IS_PARAM_SPEC_ENUM(c))
    return g_param_spec_enum(p.name, nick, blurb, G_PARAM_SPEC_VALUE_TYPE(c),
                             G_PARAM_SPEC_ENUM(c)->default_value, flags);
  g_assert(G_IS_PARAM_SPEC_BOXED(c));
  return g_param_spec_boxed(p.name, nick, blurb, G_PARAM_SPEC_VALUE_TYPE(c), flags);
}

}  // namespace

struct _GstTalkingHead {
  GstBin parent;
  GstElement *whisper, *lipsync, *blend;  // owned by the bin
};

G_DEFINE_TYPE(GstTalkingHead, gst_talking_head, GST_TYPE_BIN);
GST_ELEMENT_REGISTER_DEFINE(talkinghead, "talkinghead", GST_RANK_NONE, GST_TYPE_TALKING_HEAD);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS("audio/x-raw, format=(string){ S16LE, F32LE }, rate=(int)16000, "
                    "channels=(int)1, layout=(string)interleaved"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw, format=(string)BGR"));

static GstElement *child_of(GstTalkingHead *self, int child) {
  return child == kWhisper ? self->whisper : child == kLipSync ? self->lipsync : self->blend;
}

static void talking_head_set_property(GObject *object, guint id, const GValue *value,
                                      GParamSpec *pspec) {
  auto *self = GST_TALKING_HEAD(object);
  if (id == 0 || id > G_N_ELEMENTS(kProxies)) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    return;
  }
  const Proxy &p = kProxies[id - 1];
  for (int c : {kWhisper, kLipSync, kBlend})
    if (p.children & c) g_object_set_property(G_OBJECT(child_of(self, c)), p.child_property, value);
}

static void talking_head_get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  auto *self = GST_TALKING_HEAD(object);
  if (id == 0 || id > G_N_ELEMENTS(kProxies)) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    return;
  }
  const Proxy &p = kProxies[id - 1];
  g_object_get_property(G_OBJECT(child_of(self, first_child(p.children))), p.child_property, value);
}

static void gst_talking_head_class_init(GstTalkingHeadClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = talking_head_set_property;
  gobject_class->get_property = talking_head_get_property;
  for (guint i = 0; i < G_N_ELEMENTS(kProxies); ++i)
    g_object_class_install_property(gobject_class, i + 1, proxy_pspec(kProxies[i]));
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Talking head", "Filter/Converter/Video",
      "Speech in, lip-synced avatar video out: whisperfeat ! musetalklipsync ! faceblend",
      "gst-talker developers");
  GST_DEBUG_CATEGORY_INIT(talkinghead_debug, "talkinghead", 0, "talking-head bin");
}

static void gst_talking_head_init(GstTalkingHead *self) {
  self->whisper = GST_ELEMENT(g_object_new(GST_TYPE_WHISPER_FEAT, "name", "whisperfeat", nullptr));
  self->lipsync =
      GST_ELEMENT(g_object_new(GST_TYPE_MUSETALK_LIPSYNC, "name", "musetalklipsync", nullptr));
  self->blend = GST_ELEMENT(g_object_new(GST_TYPE_FACE_BLEND, "name", "faceblend", nullptr));
  gst_bin_add_many(GST_BIN(self), self->whisper, self->lipsync, self->blend, nullptr);
  gst_element_link_many(self->whisper, self->lipsync, self->blend, nullptr);
  GstPad *sink = gst_element_get_static_pad(self->whisper, "sink");
  GstPad *src = gst_element_get_static_pad(self->blend, "src");
  gst_element_add_pad(
      GST_ELEMENT(self),
      gst_ghost_pad_new_from_template("sink", sink, gst_static_pad_template_get(&sink_template)));
  gst_element_add_pad(
      GST_ELEMENT(self),
      gst_ghost_pad_new_from_template("src", src, gst_static_pad_template_get(&src_template)));
  gst_object_unref(sink);
  gst_object_unref(src);
}
