// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/nn/weights.h"

#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>

#include "lib/common/error.h"
#include "lib/common/mapped_file.h"
#include "lib/nn/zip_archive.h"

namespace talker::nn {

std::string shape_string(torch::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

namespace {

// A tensor over bytes of the mapped file, kept alive by the tensor itself.
// Misaligned data (possible in safetensors) is copied instead.
torch::Tensor view_bytes(const std::shared_ptr<MappedFile> &file, uint64_t offset,
                         std::vector<int64_t> shape, torch::ScalarType dtype) {
  uint8_t *ptr = file->mutable_data() + offset;
  auto opts = torch::TensorOptions().dtype(dtype);
  if (reinterpret_cast<uintptr_t>(ptr) % c10::elementSize(dtype) != 0) {
    auto t = torch::empty(shape, opts);
    std::memcpy(t.data_ptr(), ptr, t.nbytes());
    return t;
  }
  auto keep = file;
  return torch::from_blob(
      ptr, shape, [keep](void *) {}, opts);
}

bool storage_dtype(const std::string &type, torch::ScalarType *out) {
  static const std::map<std::string, torch::ScalarType> kTypes = {
      {"torch.FloatStorage", torch::kFloat},       {"torch.HalfStorage", torch::kHalf},
      {"torch.BFloat16Storage", torch::kBFloat16}, {"torch.DoubleStorage", torch::kDouble},
      {"torch.LongStorage", torch::kLong},         {"torch.IntStorage", torch::kInt},
      {"torch.ShortStorage", torch::kShort},       {"torch.CharStorage", torch::kChar},
      {"torch.ByteStorage", torch::kByte},         {"torch.BoolStorage", torch::kBool}};
  auto it = kTypes.find(type);
  if (it == kTypes.end()) return false;
  *out = it->second;
  return true;
}

bool is_tensor_dict(const PyRef &v) {
  if (!v || !v->is(PyValue::Kind::Dict) || v->entries.empty()) return false;
  for (const auto &e : v->entries)
    if (e.second->is(PyValue::Kind::Tensor)) return true;
  return false;
}

}  // namespace

Weights load_torch_checkpoint(const std::string &path) {
  Weights w = load_torch_object(path);
  PyRef dict = nullptr;
  if (is_tensor_dict(w.root)) {
    dict = w.root;
  } else {
    for (const char *key : {"state_dict", "model_state_dict", "model", "module"}) {
      if (is_tensor_dict(w.root->get(key))) {
        dict = w.root->get(key);
        break;
      }
    }
  }
  if (!dict) throw Error(path + ": checkpoint holds no state dict (no dict of tensors found)");
  for (const auto &e : dict->entries)
    if (e.first->is(PyValue::Kind::String) && e.second->is(PyValue::Kind::Tensor))
      w.tensors[e.first->text] = e.second->tensor;
  return w;
}

PyRef load_pickle(const std::string &path) {
  auto file = MappedFile::open(path);
  return unpickle(file->data(), file->size(), path, nullptr);
}

Weights load_torch_object(const std::string &path) {
  auto file = MappedFile::open(path);
  ZipArchive zip(file);
  // The archive's top folder is the file stem for older writers, "archive"
  // for newer ones: find it from data.pkl.
  std::string prefix;
  bool found = false;
  for (const auto &name : zip.names()) {
    auto slash = name.find('/');
    if (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      prefix = name.substr(0, slash + 1);
      found = true;
      break;
    }
  }
  if (!found) throw Error(path + ": ZIP archive without data.pkl: not a PyTorch checkpoint");
  for (const auto &name : zip.names()) zip.verify(name);

  std::map<std::string, torch::Tensor> storages;
  PersistentLoad load_storage = [&](const PyRef &pid) -> PyRef {
    if (!pid->is(PyValue::Kind::Tuple) || pid->items.size() < 5 ||
        pid->items[0]->text != "storage" || !pid->items[1]->is(PyValue::Kind::Global) ||
        !pid->items[2]->is(PyValue::Kind::String) || !pid->items[4]->is(PyValue::Kind::Int))
      throw Error(path + ": corrupt checkpoint: unexpected persistent id in data.pkl");
    torch::ScalarType dtype;
    if (!storage_dtype(pid->items[1]->text, &dtype))
      throw Error(path + ": unsupported storage type " + pid->items[1]->text);
    const std::string &key = pid->items[2]->text;
    int64_t numel = pid->items[4]->integer;
    auto it = storages.find(key);
    if (it == storages.end()) {
      const auto &rec = zip.record(prefix + "data/" + key);
      uint64_t need = 0;
      if (numel < 0 ||
          __builtin_mul_overflow(uint64_t(numel), uint64_t(c10::elementSize(dtype)), &need) ||
          rec.size < need)
        throw Error(path + ": corrupt checkpoint: storage " + key + " holds " +
                    std::to_string(rec.size) + " bytes, " + std::to_string(need) + " expected");
      it = storages.emplace(key, view_bytes(file, rec.offset, {numel}, dtype)).first;
    }
    auto v = std::make_shared<PyValue>();
    v->kind = PyValue::Kind::Tensor;
    v->tensor = it->second;
    return v;
  };
  const auto &pkl = zip.record(prefix + "data.pkl");
  Weights w;
  w.path = path;
  w.root = unpickle(zip.data(pkl), pkl.size, path, load_storage);
  return w;
}

Weights load_safetensors(const std::string &path) {
  auto file = MappedFile::open(path);
  const uint64_t size = file->size();
  if (size < 8) throw Error(path + ": truncated safetensors file (no header length)");
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t(file->data()[i]) << (8 * i);
  if (header_len > size - 8)
    throw Error(path + ": not a safetensors file, or truncated (header length " +
                std::to_string(header_len) + " exceeds file size)");
  auto header = nlohmann::json::parse(file->data() + 8, file->data() + 8 + header_len, nullptr,
                                      /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    throw Error(path + ": corrupt safetensors header (not a JSON object)");
  static const std::map<std::string, torch::ScalarType> kTypes = {
      {"F32", torch::kFloat},  {"F16", torch::kHalf}, {"BF16", torch::kBFloat16},
      {"F64", torch::kDouble}, {"I64", torch::kLong}, {"I32", torch::kInt},
      {"I16", torch::kShort},  {"I8", torch::kChar},  {"U8", torch::kByte},
      {"BOOL", torch::kBool}};
  const uint64_t data_start = 8 + header_len;
  Weights w;
  w.path = path;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string &name = it.key();
    const auto &entry = it.value();
    if (name == "__metadata__") {
      if (entry.is_object())
        for (auto m = entry.begin(); m != entry.end(); ++m)
          if (m.value().is_string()) w.metadata[m.key()] = m.value().get<std::string>();
      continue;
    }
    auto bad = [&](const std::string &why) {
      return Error(path + ": tensor " + name + ": " + why);
    };
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      throw bad("header entry lacks dtype, shape or data_offsets");
    const auto &dt = entry["dtype"];
    auto type = dt.is_string() ? kTypes.find(dt.get<std::string>()) : kTypes.end();
    if (type == kTypes.end()) throw bad("unsupported dtype " + dt.dump());
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const auto &d : entry["shape"]) {
      if (!d.is_number_unsigned()) throw bad("bad shape " + entry["shape"].dump());
      // A shape whose size wraps around 2^64 would pass the size check below.
      if (d.get<uint64_t>() > uint64_t(INT64_MAX) ||
          __builtin_mul_overflow(numel, d.get<uint64_t>(), &numel))
        throw bad("shape " + entry["shape"].dump() + " is too large");
      shape.push_back(d.get<int64_t>());
    }
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(numel, uint64_t(c10::elementSize(type->second)), &bytes))
      throw bad("shape " + entry["shape"].dump() + " is too large");
    const auto &off = entry["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      throw bad("bad data_offsets " + off.dump());
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (end < begin || end > size - data_start)
      throw bad("data runs past the end of the file (truncated?)");
    if (end - begin != bytes)
      throw bad("holds " + std::to_string(end - begin) + " bytes, shape " + shape_string(shape) +
                " needs " + std::to_string(bytes));
    w.tensors[name] = view_bytes(file, data_start + begin, shape, type->second);
  }
  return w;
}

std::string diffusers_weights_file(const std::string &folder) {
  for (const char *name : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"}) {
    const std::string file = folder + "/" + name;
    struct stat st {};
    if (stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return file;
  }
  throw Error(folder + ": no diffusion_pytorch_model.safetensors or .bin in this model folder");
}

Weights load_weights(const std::string &path) {
  auto file = MappedFile::open(path);
  if (ZipArchive::looks_like_zip(file->data(), file->size())) return load_torch_checkpoint(path);
  // Pre-1.6 torch.save files start with a pickled magic number.
  if (file->size() >= 2 && file->data()[0] == 0x80 && file->data()[1] == 0x02)
    throw Error(path +
                ": legacy (pre-zip) torch.save format is not supported; re-save it with "
                "PyTorch >= 1.6 or convert it to safetensors");
  return load_safetensors(path);
}

void save_safetensors(const std::string &path, const StateDict &tensors) {
  static const std::map<torch::ScalarType, const char *> kNames = {
      {torch::kFloat, "F32"},  {torch::kHalf, "F16"}, {torch::kBFloat16, "BF16"},
      {torch::kDouble, "F64"}, {torch::kLong, "I64"}, {torch::kInt, "I32"},
      {torch::kShort, "I16"},  {torch::kChar, "I8"},  {torch::kByte, "U8"},
      {torch::kBool, "BOOL"}};
  nlohmann::json header = nlohmann::json::object();
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto &kv : tensors) {
    auto t = kv.second.contiguous().cpu();
    auto name = kNames.find(t.scalar_type());
    if (name == kNames.end()) throw Error(path + ": cannot store dtype of " + kv.first);
    header[kv.first] = {{"dtype", name->second},
                        {"shape", t.sizes().vec()},
                        {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
    data.push_back(t);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(path + ": cannot write");
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
  out.write(text.data(), text.size());
  for (const auto &t : data) out.write(static_cast<const char *>(t.data_ptr()), t.nbytes());
  if (!out) throw Error(path + ": write failed");
}

void load_state_dict(torch::nn::Module &module, const StateDict &tensors, const std::string &path) {
  std::set<std::string> used;
  std::vector<std::string> missing;
  torch::NoGradGuard no_grad;
  auto fill = [&](const std::string &name, torch::Tensor &target) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      missing.push_back(name);
      return;
    }
    if (!it->second.sizes().equals(target.sizes()))
      throw Error(path + ": key " + name + " has shape " + shape_string(it->second.sizes()) +
                  ", the model expects " + shape_string(target.sizes()));
    target.copy_(it->second);
    used.insert(name);
  };
  for (auto &p : module.named_parameters()) fill(p.key(), p.value());
  for (auto &b : module.named_buffers()) fill(b.key(), b.value());
  auto list = [](const std::vector<std::string> &names) {
    std::string s;
    for (size_t i = 0; i < names.size() && i < 5; ++i) s += (i ? ", " : "") + names[i];
    if (names.size() > 5) s += ", … (" + std::to_string(names.size()) + " in all)";
    return s;
  };
  if (!missing.empty()) throw Error(path + ": missing keys: " + list(missing));
  std::vector<std::string> unexpected;
  for (const auto &kv : tensors)
    if (!used.count(kv.first)) unexpected.push_back(kv.first);
  if (!unexpected.empty()) throw Error(path + ": unexpected keys: " + list(unexpected));
}

}  // namespace talker::nn
