// SPDX-License-Identifier: LGPL-2.1-or-later
#include "lib/nn/pickle.h"

#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "lib/common/error.h"

namespace talker::nn {

PyRef PyValue::get(const std::string &key) const {
  if (kind != Kind::Dict) return nullptr;
  for (const auto &e : entries)
    if (e.first && e.first->kind == Kind::String && e.first->text == key) return e.second;
  return nullptr;
}

namespace {

PyRef make(PyValue::Kind k) {
  auto v = std::make_shared<PyValue>();
  v->kind = k;
  return v;
}
PyRef make_int(int64_t i) {
  auto v = make(PyValue::Kind::Int);
  v->integer = i;
  return v;
}
PyRef make_str(PyValue::Kind k, std::string s) {
  auto v = make(k);
  v->text = std::move(s);
  return v;
}

class Unpickler {
 public:
  Unpickler(const uint8_t *data, size_t size, const std::string &where, const PersistentLoad &pl)
      : p_(data), end_(data + size), where_(where), persistent_load_(pl) {}

  PyRef run() {
    for (;;) {
      uint8_t op = u8();
      switch (op) {
        case 0x80:
          u8();
          break;  // PROTO
        case 0x95:
          take(8);
          break;  // FRAME
        case '.':
          return pop();  // STOP
        case 'N':
          push(make(PyValue::Kind::None));
          break;
        case 0x88:
          push_bool(true);
          break;  // NEWTRUE
        case 0x89:
          push_bool(false);
          break;  // NEWFALSE
        case 'J':
          push(make_int(static_cast<int32_t>(le(4))));
          break;  // BININT
        case 'K':
          push(make_int(le(1)));
          break;  // BININT1
        case 'M':
          push(make_int(le(2)));
          break;  // BININT2
        case 0x8a:
          push(make_int(long1()));
          break;  // LONG1
        case 'G':
          push_float();
          break;  // BINFLOAT
        case 'X':
          push(make_str(PyValue::Kind::String, take_str(le(4))));
          break;  // BINUNICODE
        case 0x8c:
          push(make_str(PyValue::Kind::String, take_str(le(1))));
          break;  // SHORT_BINUNICODE
        case 0x8d:
          push(make_str(PyValue::Kind::String, take_str(le(8))));
          break;  // BINUNICODE8
        case 'T':
          push(make_str(PyValue::Kind::String, take_str(le(4))));
          break;  // BINSTRING
        case 'U':
          push(make_str(PyValue::Kind::String, take_str(le(1))));
          break;  // SHORT_BINSTRING
        case 'B':
          push(make_str(PyValue::Kind::Bytes, take_str(le(4))));
          break;  // BINBYTES
        case 'C':
          push(make_str(PyValue::Kind::Bytes, take_str(le(1))));
          break;  // SHORT_BINBYTES
        case '(':
          marks_.push_back(stack_.size());
          break;  // MARK
        case ')':
          push(make(PyValue::Kind::Tuple));
          break;  // EMPTY_TUPLE
        case 't':
          push(sequence(PyValue::Kind::Tuple, pop_mark()));
          break;  // TUPLE
        case 0x85:
          push(tuple_of(1));
          break;  // TUPLE1
        case 0x86:
          push(tuple_of(2));
          break;  // TUPLE2
        case 0x87:
          push(tuple_of(3));
          break;  // TUPLE3
        case ']':
          push(make(PyValue::Kind::List));
          break;  // EMPTY_LIST
        case 'l':
          push(sequence(PyValue::Kind::List, pop_mark()));
          break;  // LIST
        case 'a':
          append(std::vector<PyRef>{pop()});
          break;  // APPEND
        case 'e':
          append(pop_mark());
          break;  // APPENDS
        case '}':
          push(make(PyValue::Kind::Dict));
          break;     // EMPTY_DICT
        case 'd': {  // DICT
          auto d = make(PyValue::Kind::Dict);
          set_items(d, pop_mark());
          push(d);
          break;
        }
        case 's': {  // SETITEM
          PyRef v = pop(), k = pop();
          set_items(top(), {k, v});
          break;
        }
        case 'u': {  // SETITEMS
          auto kv = pop_mark();
          set_items(top(), kv);
          break;
        }
        case '0':
          pop();
          break;  // POP
        case '1':
          pop_mark();
          break;  // POP_MARK
        case '2':
          push(top());
          break;  // DUP
        case 'q':
          memo_put(le(1));
          break;  // BINPUT
        case 'r':
          memo_put(le(4));
          break;  // LONG_BINPUT
        case 0x94:
          memo_put(memo_.size());  // MEMOIZE: the next key, as Python counts them
          break;                   // MEMOIZE
        case 'h':
          push(memo_get(le(1)));
          break;  // BINGET
        case 'j':
          push(memo_get(le(4)));
          break;     // LONG_BINGET
        case 'c': {  // GLOBAL
          std::string module = line(), name = line();
          push(make_str(PyValue::Kind::Global, module + "." + name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          // Two strings (Python refuses anything else). A global is not a
          // string: without the check, DUP and STACK_GLOBAL doubled one
          // global's name per pair, 2^N bytes from a 278-byte pickle
          // (found by fuzz_pickle).
          PyRef name = pop(), module = pop();
          if (!name->is(PyValue::Kind::String) || !module->is(PyValue::Kind::String))
            fail("STACK_GLOBAL needs a module and a name (strings)");
          push(make_str(PyValue::Kind::Global, module->text + "." + name->text));
          break;
        }
        case 'Q': {  // BINPERSID
          PyRef pid = pop();
          if (!persistent_load_) fail("persistent id without a loader");
          push(persistent_load_(pid));
          break;
        }
        case 'R':     // REDUCE
        case 0x81: {  // NEWOBJ
          PyRef args = pop(), callable = pop();
          push(reduce(callable, args));
          break;
        }
        case 'b':
          pop();
          break;  // BUILD: state (OrderedDict _metadata, tensor hooks): not needed
        default: {
          char hex[8];
          snprintf(hex, sizeof hex, "0x%02x", op);
          fail(std::string("unsupported pickle opcode ") + hex);
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string &why) const {
    throw Error(where_ + ": corrupt or unsupported pickle: " + why);
  }
  uint8_t u8() {
    if (p_ >= end_) fail("unexpected end of data");
    return *p_++;
  }
  const uint8_t *take(uint64_t n) {
    if (n > uint64_t(end_ - p_)) fail("unexpected end of data");
    const uint8_t *at = p_;
    p_ += n;
    return at;
  }
  uint64_t le(int n) {
    const uint8_t *b = take(n);
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(b[i]) << (8 * i);
    return v;
  }
  std::string take_str(uint64_t n) {
    const uint8_t *b = take(n);
    return std::string(reinterpret_cast<const char *>(b), n);
  }
  int64_t long1() {
    int n = u8();
    if (n > 8) fail("integer wider than 64 bits");
    if (n == 0) return 0;
    uint64_t v = le(n);
    if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }
  std::string line() {
    std::string s;
    for (;;) {
      char c = static_cast<char>(u8());
      if (c == '\n') return s;
      s.push_back(c);
    }
  }
  void push(PyRef v) { stack_.push_back(std::move(v)); }
  void push_bool(bool b) {
    auto v = make(PyValue::Kind::Bool);
    v->boolean = b;
    push(v);
  }
  void push_float() {
    const uint8_t *b = take(8);
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits = (bits << 8) | b[i];  // big-endian
    double d;
    std::memcpy(&d, &bits, 8);
    auto v = make(PyValue::Kind::Float);
    v->real = d;
    push(v);
  }
  PyRef pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      fail("stack underflow");
    PyRef v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PyRef &top() {
    if (stack_.empty()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<PyRef> pop_mark() {
    if (marks_.empty()) fail("MARK expected");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> out(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return out;
  }
  PyRef sequence(PyValue::Kind k, std::vector<PyRef> items) {
    auto v = make(k);
    v->items = std::move(items);
    return v;
  }
  PyRef tuple_of(size_t n) {
    if (stack_.size() < n) fail("stack underflow");
    std::vector<PyRef> items(stack_.end() - n, stack_.end());
    stack_.resize(stack_.size() - n);
    return sequence(PyValue::Kind::Tuple, std::move(items));
  }
  // Whether `from` is `target` or holds it, at any depth. Python data may
  // hold itself; ours may not: shared_ptr cycles would never be freed (a
  // 9-byte pickle, a list appended to itself, leaked), and no checkpoint
  // needs them.
  static bool reaches(const PyValue *from, const PyValue *target,
                      std::unordered_set<const PyValue *> *seen) {
    if (from == target) return true;
    if (!seen->insert(from).second) return false;
    for (const PyRef &i : from->items)
      if (reaches(i.get(), target, seen)) return true;
    for (const auto &[k, v] : from->entries)
      if (reaches(k.get(), target, seen) || reaches(v.get(), target, seen)) return true;
    return false;
  }
  void refuse_cycle(const PyRef &container, const PyRef &item) {
    std::unordered_set<const PyValue *> seen;
    if (reaches(item.get(), container.get(), &seen)) fail("a list or dict that holds itself");
  }
  void append(const std::vector<PyRef> &items) {
    PyRef &list = top();
    if (!list->is(PyValue::Kind::List)) fail("APPEND to a non-list");
    for (const PyRef &i : items) refuse_cycle(list, i);
    list->items.insert(list->items.end(), items.begin(), items.end());
  }
  void set_items(const PyRef &dict, const std::vector<PyRef> &kv) {
    if (!dict->is(PyValue::Kind::Dict)) fail("SETITEM on a non-dict");
    if (kv.size() % 2) fail("odd number of dict items");
    for (const PyRef &i : kv) refuse_cycle(dict, i);
    for (size_t i = 0; i < kv.size(); i += 2) dict->entries.emplace_back(kv[i], kv[i + 1]);
  }
  // A map, not a vector indexed by the memo key: the key is the file's to
  // choose (LONG_BINPUT 2^32-1 asked a vector for 64 GiB).
  void memo_put(uint64_t idx) { memo_[idx] = top(); }
  PyRef memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end() || !it->second) fail("memo index out of range");
    return it->second;
  }
  std::vector<int64_t> ints(const PyRef &t, const char *what) {
    if (!t->is(PyValue::Kind::Tuple) && !t->is(PyValue::Kind::List))
      fail(std::string(what) + " is not a tuple");
    std::vector<int64_t> out;
    for (const auto &i : t->items) {
      if (!i->is(PyValue::Kind::Int)) fail(std::string(what) + " holds a non-integer");
      out.push_back(i->integer);
    }
    return out;
  }
  PyRef rebuild_tensor(const std::vector<PyRef> &a) {
    if (a.size() < 4 || !a[0]->is(PyValue::Kind::Tensor) || !a[1]->is(PyValue::Kind::Int))
      fail("bad arguments to _rebuild_tensor");
    const torch::Tensor &storage = a[0]->tensor;
    int64_t offset = a[1]->integer;
    auto size = ints(a[2], "tensor size"), stride = ints(a[3], "tensor stride");
    if (size.size() != stride.size()) fail("tensor size and stride differ in rank");
    int64_t last = offset;
    bool empty = false;
    for (size_t i = 0; i < size.size(); ++i) {
      if (size[i] < 0 || stride[i] < 0) fail("negative tensor size or stride");
      if (size[i] == 0)
        empty = true;
      else
        last += (size[i] - 1) * stride[i];
    }
    if (offset < 0 || (!empty && last >= storage.numel()))
      fail("tensor view runs past its storage");
    auto v = make(PyValue::Kind::Tensor);
    v->tensor = storage.as_strided(size, stride, offset);
    return v;
  }
  PyRef reduce(const PyRef &callable, const PyRef &args) {
    if (!callable->is(PyValue::Kind::Global)) fail("call of a non-global");
    if (!args->is(PyValue::Kind::Tuple)) fail("call arguments are not a tuple");
    const std::string &fn = callable->text;
    const auto &a = args->items;
    if (fn == "collections.OrderedDict" || fn == "builtins.dict") {
      auto d = make(PyValue::Kind::Dict);
      if (!a.empty() && (a[0]->is(PyValue::Kind::List) || a[0]->is(PyValue::Kind::Tuple)))
        for (const auto &pair : a[0]->items)
          if (pair->items.size() == 2) d->entries.emplace_back(pair->items[0], pair->items[1]);
      return d;
    }
    if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor")
      return rebuild_tensor(a);
    if (fn == "torch._utils._rebuild_parameter" ||
        fn == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || !a[0]->is(PyValue::Kind::Tensor)) fail("bad arguments to " + fn);
      return a[0];
    }
    // numpy scalars, as in pickled lists of box coordinates: dtype('i4', ...)
    // then scalar(dtype, raw little-endian bytes).
    if (fn == "numpy.dtype") {
      if (a.empty() || !a[0]->is(PyValue::Kind::String)) fail("bad arguments to numpy.dtype");
      return make_str(PyValue::Kind::String, a[0]->text);
    }
    if (fn == "numpy.core.multiarray.scalar" || fn == "numpy._core.multiarray.scalar") {
      if (a.size() < 2 || !a[0]->is(PyValue::Kind::String) ||
          !(a[1]->is(PyValue::Kind::Bytes) || a[1]->is(PyValue::Kind::String)))
        fail("bad arguments to numpy scalar");
      return numpy_scalar(a[0]->text, a[1]->text);
    }
    fail("unsupported object " + fn);
  }
  PyRef numpy_scalar(const std::string &dtype, const std::string &raw) {
    auto bytes = reinterpret_cast<const uint8_t *>(raw.data());
    auto need = [&](size_t n) {
      if (raw.size() != n)
        fail("numpy scalar of dtype " + dtype + " with " + std::to_string(raw.size()) + " bytes");
    };
    uint64_t bits = 0;
    for (size_t i = 0; i < raw.size() && i < 8; ++i) bits |= uint64_t(bytes[i]) << (8 * i);
    if (dtype == "i1" || dtype == "i2" || dtype == "i4" || dtype == "i8") {
      const size_t n = size_t(dtype[1] - '0');
      need(n);
      int64_t v = int64_t(bits << (64 - 8 * n)) >> (64 - 8 * n);  // sign-extend
      return make_int(v);
    }
    if (dtype == "u1" || dtype == "u2" || dtype == "u4" || dtype == "u8") {
      need(size_t(dtype[1] - '0'));
      return make_int(int64_t(bits));
    }
    if (dtype == "f4" || dtype == "f8") {
      auto v = make(PyValue::Kind::Float);
      if (dtype == "f4") {
        need(4);
        uint32_t b32 = uint32_t(bits);
        float f;
        std::memcpy(&f, &b32, 4);
        v->real = f;
      } else {
        need(8);
        std::memcpy(&v->real, &bits, 8);
      }
      return v;
    }
    if (dtype == "b1") {
      need(1);
      auto v = make(PyValue::Kind::Bool);
      v->boolean = bits != 0;
      return v;
    }
    fail("unsupported numpy scalar dtype " + dtype);
  }

  const uint8_t *p_;
  const uint8_t *end_;
  const std::string &where_;
  const PersistentLoad &persistent_load_;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyRef> memo_;
};

}  // namespace

PyRef unpickle(const uint8_t *data, size_t size, const std::string &where,
               const PersistentLoad &persistent_load) {
  return Unpickler(data, size, where, persistent_load).run();
}

}  // namespace talker::nn
