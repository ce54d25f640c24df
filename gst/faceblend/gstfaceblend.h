// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_FACE_BLEND (gst_face_blend_get_type())
G_DECLARE_FINAL_TYPE(GstFaceBlend, gst_face_blend, GST, FACE_BLEND, GstBaseTransform)
GST_ELEMENT_REGISTER_DECLARE(faceblend);

G_END_DECLS
