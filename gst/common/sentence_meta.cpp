// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/common/sentence_meta.h"

GType talker_sentence_meta_api_get_type(void) {
  static GType type = 0;
  static const gchar *tags[] = {nullptr};
  if (g_once_init_enter(&type)) {
    // Applications link their own copy of this file: the first to run registers.
    GType t = g_type_from_name("TalkerSentenceMetaAPI");
    if (!t) t = gst_meta_api_type_register("TalkerSentenceMetaAPI", tags);
    g_once_init_leave(&type, t);
  }
  return type;
}

static gboolean sentence_meta_init(GstMeta *meta, gpointer, GstBuffer *) {
  auto *m = reinterpret_cast<TalkerSentenceMeta *>(meta);
  m->state = TALKER_SENTENCE_START;
  m->id = m->utterance = 0;
  m->text = nullptr;
  m->offset = 0;
  m->reason = TALKER_SENTENCE_FINISHED;
  return TRUE;
}

static void sentence_meta_free(GstMeta *meta, GstBuffer *) {
  g_free(reinterpret_cast<TalkerSentenceMeta *>(meta)->text);
}

static gboolean sentence_meta_transform(GstBuffer *dest, GstMeta *meta, GstBuffer *, GQuark,
                                        gpointer) {
  // Times, not sample counts: the meta stays right through copies, queues and
  // conversions of the audio.
  auto *m = reinterpret_cast<TalkerSentenceMeta *>(meta);
  return talker_buffer_add_sentence_meta(dest, m->state, m->id, m->utterance, m->text, m->offset,
                                         m->reason) != nullptr;
}

const GstMetaInfo *talker_sentence_meta_get_info(void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter(&info)) {
    const GstMetaInfo *mi = gst_meta_get_info("TalkerSentenceMeta");
    if (!mi)
      mi = gst_meta_register(TALKER_SENTENCE_META_API_TYPE, "TalkerSentenceMeta",
                             sizeof(TalkerSentenceMeta), sentence_meta_init, sentence_meta_free,
                             sentence_meta_transform);
    g_once_init_leave(&info, mi);
  }
  return info;
}

TalkerSentenceMeta *talker_buffer_add_sentence_meta(GstBuffer *buffer, TalkerSentenceState state,
                                                    guint64 id, guint64 utterance,
                                                    const gchar *text, GstClockTime offset,
                                                    TalkerSentenceEndReason reason) {
  auto *m = reinterpret_cast<TalkerSentenceMeta *>(
      gst_buffer_add_meta(buffer, talker_sentence_meta_get_info(), nullptr));
  if (m) {
    m->state = state;
    m->id = id;
    m->utterance = utterance;
    m->text = g_strdup(text);
    m->offset = offset;
    m->reason = reason;
  }
  return m;
}

const gchar *talker_sentence_end_reason_name(TalkerSentenceEndReason reason) {
  switch (reason) {
    case TALKER_SENTENCE_INTERRUPTED:
      return "interrupted";
    case TALKER_SENTENCE_FAILED:
      return "failed";
    default:
      return "finished";
  }
}
