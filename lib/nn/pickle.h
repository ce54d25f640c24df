// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace talker::nn {

// The Python values a torch.save pickle can hold, enough to walk a checkpoint.
struct PyValue;
using PyRef = std::shared_ptr<PyValue>;

struct PyValue {
  enum class Kind { None, Bool, Int, Float, String, Bytes, Tuple, List, Dict, Global, Tensor };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;                              // String, Bytes, and Global as "module.name"
  std::vector<PyRef> items;                      // Tuple, List
  std::vector<std::pair<PyRef, PyRef>> entries;  // Dict, in insertion order
  torch::Tensor tensor;                          // Tensor (storages are 1-D tensors too)

  bool is(Kind k) const { return kind == k; }
  // Dict lookup by string key; nullptr when absent or not a dict.
  PyRef get(const std::string &key) const;
};

// Resolves a BINPERSID id (torch.save: ('storage', type, key, location, numel)).
using PersistentLoad = std::function<PyRef(const PyRef &pid)>;

// Unpickles the subset of protocol 2-4 opcodes torch.save and plain Python data
// use. Globals are limited to what checkpoints need (OrderedDict, tensor
// rebuild functions); anything else is an error naming the global. `where`
// names the file for messages.
PyRef unpickle(const uint8_t *data, size_t size, const std::string &where,
               const PersistentLoad &persistent_load);

}  // namespace talker::nn
