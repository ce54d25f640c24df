// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/common/clip_event.h"

GstEvent *talker_clip_event_new(const gchar *name, GstClockTime timestamp, GstClockTime duration) {
  GstStructure *s =
      gst_structure_new(TALKER_CLIP_EVENT_NAME, "name", G_TYPE_STRING, name, "timestamp",
                        G_TYPE_UINT64, timestamp, "duration", G_TYPE_UINT64, duration, nullptr);
  return gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM, s);
}

gboolean talker_clip_event_parse(GstEvent *event, gchar **name, GstClockTime *timestamp,
                                 GstClockTime *duration) {
  if (GST_EVENT_TYPE(event) != GST_EVENT_CUSTOM_DOWNSTREAM ||
      !gst_event_has_name(event, TALKER_CLIP_EVENT_NAME))
    return FALSE;
  const GstStructure *s = gst_event_get_structure(event);
  guint64 v = 0;
  if (name) *name = g_strdup(gst_structure_get_string(s, "name"));
  if (timestamp)
    *timestamp = gst_structure_get_uint64(s, "timestamp", &v) ? v : GST_CLOCK_TIME_NONE;
  if (duration) *duration = gst_structure_get_uint64(s, "duration", &v) ? v : 0;
  return TRUE;
}
