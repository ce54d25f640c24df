// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <gst/gst.h>

#include "gst/common/output_bin.h"

G_BEGIN_DECLS

#define GST_TYPE_TALKER_WHIP_SINK (gst_talker_whip_sink_get_type())
G_DECLARE_FINAL_TYPE(GstTalkerWhipSink, gst_talker_whip_sink, GST, TALKER_WHIP_SINK,
                     GstTalkerOutputBin)
GST_ELEMENT_REGISTER_DECLARE(talkerwhipsink);

G_END_DECLS
