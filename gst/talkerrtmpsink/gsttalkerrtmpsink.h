// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <gst/gst.h>

#include "gst/common/output_bin.h"

G_BEGIN_DECLS

#define GST_TYPE_TALKER_RTMP_SINK (gst_talker_rtmp_sink_get_type())
G_DECLARE_FINAL_TYPE(GstTalkerRtmpSink, gst_talker_rtmp_sink, GST, TALKER_RTMP_SINK,
                     GstTalkerOutputBin)
GST_ELEMENT_REGISTER_DECLARE(talkerrtmpsink);

G_END_DECLS
