// Host memory for weights a CPU backend repacked at load (repack.h): anonymous pages, 2 MiB
// aligned and advised for transparent huge pages. A decode step streams ~2 GB of weights; with
// 4 KiB pages that is half a million TLB misses per token and a hardware prefetcher that stops
// at every page boundary, which the file's own mapping (4 KiB pages of the page cache) cannot
// avoid. A buffer under 2 MiB (a tiny model's tensor) is whole 4 KiB pages instead, so small
// tensors do not each hold a huge page.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "engine/core/result.h"

namespace popper::cpu {

class PackedBuffer {
 public:
  PackedBuffer() = default;
  // Error when the memory cannot be mapped (the message names the bytes).
  static Result<PackedBuffer> allocate(size_t bytes);
  ~PackedBuffer();
  PackedBuffer(PackedBuffer&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  PackedBuffer& operator=(PackedBuffer&& o) noexcept;
  PackedBuffer(const PackedBuffer&) = delete;
  PackedBuffer& operator=(const PackedBuffer&) = delete;

  uint8_t* data() const { return p_; }
  size_t size() const { return bytes_; }

 private:
  uint8_t* p_ = nullptr;
  size_t bytes_ = 0;
};

// Drops this process's pages of a read-only file mapping in [p, p + bytes) (whole pages inside
// the range only) once their bytes have been repacked elsewhere, so the resident set holds one
// copy of the weights, not two. The bytes stay readable: a later read faults them back in from
// the page cache. No-op where the platform has no madvise.
void release_mapped_pages(const void* p, size_t bytes);

}  // namespace popper::cpu
