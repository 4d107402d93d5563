// SHA-256 digests (OpenSSL), as lowercase hex. Used for model files, contracts and evidence.
#pragma once

#include <string>
#include <string_view>

#include "engine/core/result.h"

namespace popper {

std::string sha256_hex(std::string_view data);

// Streams the file in 4 MiB chunks, so multi-GiB models hash without loading them.
Result<std::string> sha256_file(const std::string& path);

}  // namespace popper
