// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace talker {

// Process-wide cache of read-only objects (models, avatars) by key, so a
// second element or session naming the same file shares the first one's copy.
// Entries live while someone holds them; the cache keeps weak references only.
template <typename T>
class SharedCache {
 public:
  // Returns the cached object for `key`, or builds it with `make` (outside the
  // lock is not needed: loads are rare and must not race to load twice).
  std::shared_ptr<T> get(const std::string &key, const std::function<std::shared_ptr<T>()> &make) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto hit = entries_[key].lock()) return hit;
    auto made = make();
    entries_[key] = made;
    return made;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::weak_ptr<T>> entries_;
};

}  // namespace talker
