// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <gst/gst.h>

#include <memory>

namespace talker::gst {

// Owning pointers for GStreamer refcounted types: the ref is dropped when the
// pointer goes out of scope.
struct GstUnref {
  void operator()(GstCaps *p) const { gst_caps_unref(p); }
  void operator()(GstBuffer *p) const { gst_buffer_unref(p); }
  void operator()(GstEvent *p) const { gst_event_unref(p); }
  void operator()(GstQuery *p) const { gst_query_unref(p); }
  void operator()(GstMessage *p) const { gst_message_unref(p); }
  void operator()(GstSample *p) const { gst_sample_unref(p); }
  void operator()(GstElement *p) const { gst_object_unref(p); }
  void operator()(GstPad *p) const { gst_object_unref(p); }
  void operator()(GstBus *p) const { gst_object_unref(p); }
  void operator()(GstClock *p) const { gst_object_unref(p); }
  void operator()(GstStructure *p) const { gst_structure_free(p); }
};
template <typename T>
using GstPtr = std::unique_ptr<T, GstUnref>;

struct GFreeDeleter {
  void operator()(void *p) const { g_free(p); }
};
using GCharPtr = std::unique_ptr<gchar, GFreeDeleter>;

}  // namespace talker::gst
