// Writes files so a reader never sees a torn one: write to a temp file in the same directory,
// fsync it, rename over the target, fsync the directory. A crash (even kill -9) at any point
// leaves either the old file or the new one (and at worst a hidden ".<name>.tmp.XXXXXX").
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/result.h"

namespace popper {

Status write_file_atomic(const std::string& path, std::string_view contents);

// rename(2) of a file or directory written beside `to` (a finished temp), then fsync of the
// directory holding `to`, so that the new name survives a crash as well as a kill. Errors name
// both paths and the errno text; on error nothing has moved.
Status rename_durably(const std::string& from, const std::string& to);

// Reads a whole file; the error names the path and errno text.
Result<std::string> read_file(const std::string& path);

// The streaming form, for files too large to hold in memory (models, logit dumps): bytes go to
// ".<name>.tmp.XXXXXX" beside `path`; commit() fsyncs, renames it over `path` and fsyncs the
// directory. Destroyed without a successful commit() (an error, an early return), the temp file
// is removed and `path` is untouched. Errors name the temp file or the path and the errno text.
class AtomicFileWriter {
 public:
  static Result<std::unique_ptr<AtomicFileWriter>> open(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  // Buffered; large appends go straight to write(2).
  Status append(const void* data, size_t n);
  Status commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }

 private:
  AtomicFileWriter(std::string path, std::string tmp, std::string dir, int fd);
  Status flush();
  Status write_all(const uint8_t* p, size_t n);

  std::string path_, tmp_, dir_;
  int fd_;
  bool committed_ = false;
  std::vector<uint8_t> buf_;
};

}  // namespace popper
