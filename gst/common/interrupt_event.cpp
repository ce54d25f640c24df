// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/common/interrupt_event.h"

GstEvent *talker_interrupt_event_new(GstClockTime timestamp, guint64 sentence, guint64 utterance) {
  GstStructure *s = gst_structure_new(TALKER_INTERRUPT_EVENT_NAME, "timestamp", G_TYPE_UINT64,
                                      timestamp, "sentence", G_TYPE_UINT64, sentence, "utterance",
                                      G_TYPE_UINT64, utterance, nullptr);
  return gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM, s);
}

gboolean talker_event_is_interrupt(GstEvent *event) {
  return GST_EVENT_TYPE(event) == GST_EVENT_CUSTOM_DOWNSTREAM &&
         gst_event_has_name(event, TALKER_INTERRUPT_EVENT_NAME);
}

gboolean talker_interrupt_event_parse(GstEvent *event, GstClockTime *timestamp, guint64 *sentence,
                                      guint64 *utterance) {
  if (!talker_event_is_interrupt(event)) return FALSE;
  const GstStructure *s = gst_event_get_structure(event);
  guint64 v = 0;
  if (timestamp)
    *timestamp = gst_structure_get_uint64(s, "timestamp", &v) ? v : GST_CLOCK_TIME_NONE;
  if (sentence) *sentence = gst_structure_get_uint64(s, "sentence", &v) ? v : 0;
  if (utterance) *utterance = gst_structure_get_uint64(s, "utterance", &v) ? v : 0;
  return TRUE;
}
