// SPDX-License-Identifier: LGPL-2.1-or-later
// Every golden weight and vector file loads; damaged copies give one clear
// talker::Error naming the file, never a crash or a libtorch abort.
#include "tests/catch.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>

#include "lib/common/error.h"
#include "lib/nn/pickle.h"
#include "lib/nn/weights.h"
#include "lib/nn/whisper_encoder.h"
#include "tests/golden.h"

using namespace talker;
using test::golden;

namespace {

std::vector<char> read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

std::string write_temp(const std::string &name, const std::vector<char> &bytes) {
  std::string path = std::string(TALKER_BUILD_ROOT) + "/tests/" + name;
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), bytes.size());
  return path;
}

// Loads with `load`, expecting a talker::Error that names the file.
template <typename Load>
void expect_clean_error(const std::string &path, Load load, const std::string &what) {
  INFO(what);
  try {
    load(path);
    FAIL("loaded without error");
  } catch (const Error &e) {
    CHECK(std::string(e.what()).find(path) != std::string::npos);
  }
}

const char *kWeightFiles[] = {
    "unet_small/unet.pth",
    "vae_small/diffusion_pytorch_model.bin",
    "vae_small/deprecated_names/diffusion_pytorch_model.bin",
    "whisper_tiny/pytorch_model.bin",
    "whisper_tiny/tiny.pt",
};
const char *kVectorFiles[] = {
    "unet_small/inputs.safetensors",   "unet_small/expected.safetensors",
    "vae_small/inputs.safetensors",    "vae_small/expected.safetensors",
    "whisper_tiny/inputs.safetensors", "whisper_tiny/expected.safetensors",
    "blend/inputs.safetensors",        "blend/expected.safetensors",
    "e2e/inputs.safetensors",          "e2e/expected.safetensors",
};

}  // namespace

TEST_CASE("every golden weight file loads") {
  for (const char *rel : kWeightFiles) {
    INFO(rel);
    auto w = nn::load_weights(golden(rel));
    CHECK(w.tensors.size() > 10);
    for (const auto &kv : w.tensors) CHECK(kv.second.scalar_type() == torch::kFloat);
  }
  auto unet = nn::load_weights(golden("unet_small/unet.pth"));
  CHECK(unet.tensors.at("conv_in.weight").sizes() == torch::IntArrayRef({32, 8, 3, 3}));
  auto old_vae = nn::load_weights(golden("vae_small/deprecated_names/diffusion_pytorch_model.bin"));
  CHECK(old_vae.tensors.count("encoder.mid_block.attentions.0.query.weight") == 1);
  auto tiny = nn::load_weights(golden("whisper_tiny/tiny.pt"));
  REQUIRE(tiny.root);
  auto dims = tiny.root->get("dims");
  REQUIRE(dims);
  CHECK(dims->get("n_audio_state")->integer == 384);
  CHECK(dims->get("n_vocab")->integer == 51865);
  // Same tensors under both names.
  auto hf = nn::load_weights(golden("whisper_tiny/pytorch_model.bin"));
  CHECK(torch::equal(hf.tensors.at("encoder.layers.2.fc1.weight"),
                     tiny.tensors.at("encoder.blocks.2.mlp.0.weight")));
}

TEST_CASE("every golden vector file loads") {
  for (const char *rel : kVectorFiles) {
    INFO(rel);
    auto w = nn::load_safetensors(golden(rel));
    CHECK(!w.tensors.empty());
  }
  auto e2e = test::golden_tensors("e2e/expected.safetensors");
  CHECK(e2e.at("faces_bgr_uint8").scalar_type() == torch::kByte);
  CHECK(e2e.at("faces_bgr_uint8").sizes() == torch::IntArrayRef({8, 256, 256, 3}));
}

TEST_CASE("safetensors round trip") {
  nn::StateDict t{{"a", torch::arange(6, torch::kFloat).view({2, 3})},
                  {"b", torch::tensor({1, 2, 3}, torch::kLong)},
                  {"c", torch::ones({4}, torch::kHalf)}};
  std::string path = std::string(TALKER_BUILD_ROOT) + "/tests/roundtrip.safetensors";
  nn::save_safetensors(path, t);
  auto back = nn::load_weights(path).tensors;
  REQUIRE(back.size() == 3);
  for (const auto &kv : t) CHECK(torch::equal(back.at(kv.first), kv.second));
}

TEST_CASE("missing, empty and foreign files") {
  auto load = [](const std::string &p) { nn::load_weights(p); };
  expect_clean_error(golden("whisper_tiny/no_such_file.pt"), load, "missing");
  expect_clean_error(write_temp("empty.pt", {}), load, "empty");
  expect_clean_error(golden("whisper_tiny/config.json"), load, "JSON text");
  expect_clean_error(golden("whisper_tiny/manifest.json"), load, "JSON text");
  std::vector<char> legacy = {'\x80', '\x02', 'K', '\x01'};
  expect_clean_error(write_temp("legacy.pt", legacy), load, "legacy torch.save");
}

TEST_CASE("truncated and bit-flipped checkpoints give clean errors") {
  for (const char *rel : {"whisper_tiny/tiny.pt", "unet_small/unet.pth"}) {
    auto bytes = read_file(golden(rel));
    REQUIRE(bytes.size() > 100000);
    auto load = [](const std::string &p) { nn::load_weights(p); };
    for (size_t keep : {size_t(1), size_t(30), size_t(2000), bytes.size() / 3, bytes.size() / 2,
                        bytes.size() - 23, bytes.size() - 1}) {
      std::vector<char> cut(bytes.begin(), bytes.begin() + keep);
      expect_clean_error(write_temp("cut.pt", cut), load,
                         std::string(rel) + " cut to " + std::to_string(keep));
    }
    // Flips across the archive: headers, pickle, tensor data, central directory.
    std::mt19937 rng(7);
    std::vector<size_t> positions = {0,
                                     3,
                                     40,
                                     200,
                                     5000,
                                     bytes.size() / 2,
                                     bytes.size() - 30,
                                     bytes.size() - 100,
                                     bytes.size() - 2000};
    for (int i = 0; i < 12; ++i) positions.push_back(rng() % bytes.size());
    for (size_t pos : positions) {
      auto flipped = bytes;
      flipped[pos] ^= 0x5a;
      std::string path = write_temp("flip.pt", flipped);
      // A flip inside padding or an unused field may go unnoticed, but if
      // anything is reported it must be a clean error.
      try {
        nn::load_weights(path);
      } catch (const Error &e) {
        CHECK(std::string(e.what()).find(path) != std::string::npos);
      }
    }
    // Flips in the pickle and in tensor bytes are always caught (CRC-32).
    for (size_t pos : {size_t(100), size_t(20000), bytes.size() / 2}) {
      auto flipped = bytes;
      flipped[pos] ^= 0x01;
      expect_clean_error(write_temp("flip.pt", flipped), load,
                         std::string(rel) + " flip at " + std::to_string(pos));
    }
  }
}

TEST_CASE("truncated and damaged safetensors give clean errors") {
  auto bytes = read_file(golden("whisper_tiny/inputs.safetensors"));
  auto load = [](const std::string &p) { nn::load_safetensors(p); };
  for (size_t keep : {size_t(3), size_t(8), size_t(50), bytes.size() / 2, bytes.size() - 1}) {
    std::vector<char> cut(bytes.begin(), bytes.begin() + keep);
    expect_clean_error(write_temp("cut.safetensors", cut), load, "cut to " + std::to_string(keep));
  }
  auto huge_header = bytes;
  huge_header[6] = '\x7f';
  expect_clean_error(write_temp("hdr.safetensors", huge_header), load, "header length");
  // Damage the JSON header: its structure, a dtype, a shape, an offset.
  std::string header(bytes.begin() + 8, bytes.begin() + 400);
  auto damage = [&](const std::string &from, const std::string &to) {
    auto at = header.find(from);
    REQUIRE(at != std::string::npos);
    auto copy = bytes;
    std::copy(to.begin(), to.end(), copy.begin() + 8 + at);
    expect_clean_error(write_temp("damaged.safetensors", copy), load, from + " -> " + to);
  };
  damage("{", "[");
  damage("\"F32\"", "\"F31\"");
  damage("\"shape\":[", "\"shape\":\"");
  damage("\"data_offsets\":[", "\"data_offsets\":[9");
}

TEST_CASE("hostile pickles and safetensors shapes: refused or harmless, never 64 GiB or a leak") {
  // Regressions from libFuzzer runs (issue: hostile input). LONG_BINPUT with
  // the largest memo key: the memo used to be a vector sized by the key.
  const char memo_bytes[] = "\x80\x02Nr\xff\xff\xff\xff.";
  const std::string memo_key(memo_bytes, sizeof memo_bytes - 1);
  auto none = nn::unpickle(reinterpret_cast<const uint8_t *>(memo_key.data()), memo_key.size(),
                           "memo.pkl", nullptr);
  REQUIRE(none);
  CHECK(none->is(nn::PyValue::Kind::None));
  // A list appended to itself (a shared_ptr cycle, never freed).
  const char list_bytes[] =
      "\x80\x02]q\x00h\x00"
      "a.";
  const std::string self_list(list_bytes, sizeof list_bytes - 1);
  CHECK_THROWS_AS(nn::unpickle(reinterpret_cast<const uint8_t *>(self_list.data()),
                               self_list.size(), "cycle.pkl", nullptr),
                  Error);
  // A dict that holds itself as a value, through the memo.
  const char dict_bytes[] = "\x80\x02}q\x00X\x01\x00\x00\x00kh\x00s.";
  const std::string self_dict(dict_bytes, sizeof dict_bytes - 1);
  CHECK_THROWS_AS(nn::unpickle(reinterpret_cast<const uint8_t *>(self_dict.data()),
                               self_dict.size(), "cycle.pkl", nullptr),
                  Error);
  // DUP then STACK_GLOBAL over and over: a global named after itself, twice
  // as long each time (fuzz_pickle: 278 bytes ran out of memory).
  std::string doubling = "\x80\x04X\x01\x00\x00\x00aX\x01\x00\x00\x00b\x93";
  for (int i = 0; i < 64; ++i) doubling += "22\x93";
  doubling += ".";
  CHECK_THROWS_AS(nn::unpickle(reinterpret_cast<const uint8_t *>(doubling.data()), doubling.size(),
                               "doubling.pkl", nullptr),
                  Error);
  // safetensors: a shape whose element count wraps around 2^64 to 4 (16
  // bytes of F32, as the offsets say) passed the size check.
  const std::string header =
      R"({"t":{"dtype":"F32","shape":[4611686018427387905,4],"data_offsets":[0,16]}})";
  std::vector<char> file(8, 0);
  for (int i = 0; i < 8; ++i) file[i] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  file.insert(file.end(), header.begin(), header.end());
  file.insert(file.end(), 16, 0);
  const std::string path = write_temp("wrap.safetensors", file);
  try {
    nn::load_safetensors(path);
    FAIL("loaded");
  } catch (const Error &e) {
    CHECK(std::string(e.what()).find("too large") != std::string::npos);
  }
}

TEST_CASE("wrong keys and shapes name the key") {
  auto w = nn::load_weights(golden("whisper_tiny/pytorch_model.bin"));
  std::string dir = std::string(TALKER_BUILD_ROOT) + "/tests/";

  auto missing = w.tensors;
  missing.erase("encoder.layers.1.fc2.bias");
  nn::save_safetensors(dir + "missing.safetensors", missing);
  try {
    nn::load_whisper_encoder(dir + "missing.safetensors");
    FAIL("loaded");
  } catch (const Error &e) {
    CHECK_THAT(e.what(), Catch::Contains("missing keys") && Catch::Contains("blocks.1.mlp.2.bias"));
  }

  auto shaped = w.tensors;
  shaped["encoder.layers.0.fc1.weight"] = torch::zeros({1536, 385});
  nn::save_safetensors(dir + "shaped.safetensors", shaped);
  try {
    nn::load_whisper_encoder(dir + "shaped.safetensors");
    FAIL("loaded");
  } catch (const Error &e) {
    CHECK_THAT(e.what(), Catch::Contains("blocks.0.mlp.0.weight") &&
                             Catch::Contains("[1536, 385]") && Catch::Contains("[1536, 384]"));
  }

  auto extra = w.tensors;
  extra["encoder.layers.0.fc3.weight"] = torch::zeros({3});
  nn::save_safetensors(dir + "extra.safetensors", extra);
  CHECK_THROWS_WITH(nn::load_whisper_encoder(dir + "extra.safetensors"),
                    Catch::Contains("unexpected keys") && Catch::Contains("fc3"));

  CHECK_THROWS_WITH(nn::load_whisper_encoder(golden("unet_small/unet.pth")),
                    Catch::Contains("no whisper encoder keys"));
}

TEST_CASE("transformers checkpoints with a model. prefix load the same encoder") {
  auto w = nn::load_weights(golden("whisper_tiny/pytorch_model.bin"));
  nn::StateDict prefixed;
  for (const auto &kv : w.tensors) prefixed["model." + kv.first] = kv.second;
  prefixed["proj_out.weight"] = torch::zeros({4, 384});  // heads outside the encoder are ignored
  std::string path = std::string(TALKER_BUILD_ROOT) + "/tests/model_prefix.safetensors";
  nn::save_safetensors(path, prefixed);
  auto a = nn::load_whisper_encoder(path);
  auto b = nn::load_whisper_encoder(golden("whisper_tiny/tiny.pt"));
  auto pa = a->named_parameters(), pb = b->named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (const auto &p : pa) CHECK(torch::equal(p.value(), pb[p.key()]));
}

TALKER_GOLDEN_MAIN
