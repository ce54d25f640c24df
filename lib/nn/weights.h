// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "lib/nn/pickle.h"

namespace talker::nn {

using StateDict = std::map<std::string, torch::Tensor>;

// Tensors of a weight or vector file, viewing the mapped file where the
// layout allows (no copy until they are moved into a module).
struct Weights {
  std::string path;
  StateDict tensors;
  PyRef root;                                   // torch.save files: the whole unpickled object
  std::map<std::string, std::string> metadata;  // safetensors files: "__metadata__"
};

// PyTorch zip checkpoint (torch.save since 1.6: .pth/.bin/.pt) or safetensors,
// told apart by their first bytes. For torch.save files the state dict is the
// top-level dict of tensors, or the one under "state_dict",
// "model_state_dict", "model" or "module". Throws talker::Error naming the
// file and the problem.
Weights load_weights(const std::string &path);
// The weights file of a diffusers model folder: diffusion_pytorch_model.safetensors,
// else .bin. Throws talker::Error naming the folder when it has neither.
std::string diffusers_weights_file(const std::string &folder);
Weights load_torch_checkpoint(const std::string &path);
// Any torch.save file (a list of tensors, say): `root` holds what was saved,
// `tensors` stays empty.
Weights load_torch_object(const std::string &path);
// A plain pickle file (pickle.dump of lists, tuples, numbers, numpy scalars).
PyRef load_pickle(const std::string &path);
Weights load_safetensors(const std::string &path);

// Writes a safetensors file (tests and tools use it to hand tensors around).
void save_safetensors(const std::string &path, const StateDict &tensors);

// Copies `tensors` into the parameters and buffers of `module`, name for name.
// Strict: every parameter and buffer must be given with the module's shape,
// and every tensor must be used. Dtypes are converted. `path` names the file in
// errors.
void load_state_dict(torch::nn::Module &module, const StateDict &tensors, const std::string &path);

// "[320, 4, 3, 3]"
std::string shape_string(torch::IntArrayRef sizes);

}  // namespace talker::nn
