// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstddef>
#include <string>

namespace talker::avatar {

// Converts an avatar prepared by MuseTalk's real-time script or LiveTalking
// (full_imgs/NNNNNNNN.png, mask/NNNNNNNN.png, coords.pkl, mask_coords.pkl,
// latents.pt) into our folder format, without Python. Their files already
// hold the forward-and-back cycle; it is imported as it is. Returns the frame
// count; throws talker::Error naming the file and the problem.
size_t import_musetalk_avatar(const std::string &source, const std::string &destination,
                              double fps = 25);

}  // namespace talker::avatar
