// SPDX-License-Identifier: LGPL-2.1-or-later
// Which avatar frame a generated face belongs to, and whether it speaks:
// musetalklipsync puts it on every buffer, faceblend reads it.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

typedef struct {
  GstMeta meta;
  gint64 avatar_frame;  // index into the avatar's frames
  gboolean speaking;    // false: idle frame, the face is not generated
  // The buffer holds a face generated for this frame. A speaking frame
  // without one was skipped to keep the timeline (inference could not make
  // its deadline): show the last generated face instead.
  gboolean generated;
} TalkerFaceMeta;

GType talker_face_meta_api_get_type(void);
const GstMetaInfo *talker_face_meta_get_info(void);
#define TALKER_FACE_META_API_TYPE (talker_face_meta_api_get_type())

TalkerFaceMeta *talker_buffer_add_face_meta(GstBuffer *buffer, gint64 avatar_frame,
                                            gboolean speaking, gboolean generated);
TalkerFaceMeta *talker_buffer_get_face_meta(GstBuffer *buffer);

G_END_DECLS
