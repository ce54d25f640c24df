// SPDX-License-Identifier: LGPL-2.1-or-later
// The GObject side talkerrtmpsink and talkerwhipsink share: an abstract bin
// that owns a ReconnectingOutput, hands it its request pads, state changes
// and stage messages, and carries the encoder and retry properties.
#pragma once

#include <gst/gst.h>

#include "gst/common/reconnecting_output.h"

G_BEGIN_DECLS

#define GST_TYPE_TALKER_OUTPUT_BIN (gst_talker_output_bin_get_type())
G_DECLARE_DERIVABLE_TYPE(GstTalkerOutputBin, gst_talker_output_bin, GST, TALKER_OUTPUT_BIN, GstBin)

struct _GstTalkerOutputBinClass {
  GstBinClass parent_class;
};

G_END_DECLS

namespace talker::gst {

// From a subclass's instance init: the bin owns `output` from then on and
// deletes it at finalize (after stopping it at dispose at the latest).
void output_bin_take_output(GstTalkerOutputBin *bin, ReconnectingOutput *output);

}  // namespace talker::gst
