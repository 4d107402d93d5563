// Writes files so a reader never sees a torn one: write to a temp file in the same directory,
// fsync it, rename over the target, fsync the directory. A crash (even kill -9) at any point
// leaves either the old file or the new one.
#pragma once

#include <string>
#include <string_view>

#include "engine/core/result.h"

namespace popper {

Status write_file_atomic(const std::string& path, std::string_view contents);

// Reads a whole file; the error names the path and errno text.
Result<std::string> read_file(const std::string& path);

}  // namespace popper
