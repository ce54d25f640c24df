// SPDX-License-Identifier: LGPL-2.1-or-later
#include "gst/common/face_meta.h"

GType talker_face_meta_api_get_type(void) {
  static GType type = 0;
  static const gchar *tags[] = {nullptr};
  if (g_once_init_enter(&type)) {
    // An application that reads the meta links its own copy of this file:
    // the first copy to run registers the type, the others find it.
    GType t = g_type_from_name("TalkerFaceMetaAPI");
    if (!t) t = gst_meta_api_type_register("TalkerFaceMetaAPI", tags);
    g_once_init_leave(&type, t);
  }
  return type;
}

static gboolean face_meta_init(GstMeta *meta, gpointer, GstBuffer *) {
  auto *m = reinterpret_cast<TalkerFaceMeta *>(meta);
  m->avatar_frame = -1;
  m->speaking = FALSE;
  m->generated = FALSE;
  return TRUE;
}

static gboolean face_meta_transform(GstBuffer *dest, GstMeta *meta, GstBuffer *, GQuark type,
                                    gpointer) {
  // The meta describes the whole frame, so it survives copies and conversions.
  auto *m = reinterpret_cast<TalkerFaceMeta *>(meta);
  (void)type;
  return talker_buffer_add_face_meta(dest, m->avatar_frame, m->speaking, m->generated) != nullptr;
}

const GstMetaInfo *talker_face_meta_get_info(void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter(&info)) {
    const GstMetaInfo *mi = gst_meta_get_info("TalkerFaceMeta");
    if (!mi)
      mi = gst_meta_register(TALKER_FACE_META_API_TYPE, "TalkerFaceMeta", sizeof(TalkerFaceMeta),
                             face_meta_init, nullptr, face_meta_transform);
    g_once_init_leave(&info, mi);
  }
  return info;
}

TalkerFaceMeta *talker_buffer_add_face_meta(GstBuffer *buffer, gint64 avatar_frame,
                                            gboolean speaking, gboolean generated) {
  auto *m = reinterpret_cast<TalkerFaceMeta *>(
      gst_buffer_add_meta(buffer, talker_face_meta_get_info(), nullptr));
  if (m) {
    m->avatar_frame = avatar_frame;
    m->speaking = speaking;
    m->generated = generated;
  }
  return m;
}

TalkerFaceMeta *talker_buffer_get_face_meta(GstBuffer *buffer) {
  return reinterpret_cast<TalkerFaceMeta *>(gst_buffer_get_meta(buffer, TALKER_FACE_META_API_TYPE));
}
