// FileStamp: what tells one version of a file on disk from the next — modification time, size
// and inode — so a poller can ask "did this file change since I last loaded it?" without reading
// it. The inode catches a file replaced by rename (the way editors and Kubernetes ConfigMap
// volumes update files) even within one mtime tick.
//
// Used by the control thread for the config file and by governance for the keys file. Blocking
// (one stat(2)); never call it on a worker.
#pragma once

#include <cstdint>
#include <string>

namespace tokenway {

struct FileStamp {
  bool exists = false;  // false: stat failed (missing, unreadable directory); the rest is 0
  int64_t mtime_ns = 0;
  int64_t size = 0;
  uint64_t inode = 0;

  bool operator==(const FileStamp&) const = default;

  // The stamp of `path` now.
  static FileStamp Of(const std::string& path);
};

}  // namespace tokenway
