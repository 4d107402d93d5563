#include "engine/cpu/packed_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace popper::cpu {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;

}  // namespace

Result<PackedBuffer> PackedBuffer::allocate(size_t bytes) {
  PackedBuffer b;
  if (bytes == 0) return b;
  if (bytes < kHugePage) {
    // A small tensor (a tiny model's): whole 4 KiB pages, no huge page (which would make every
    // small tensor 2 MiB resident).
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t want = (bytes + page - 1) / page * page;
    void* raw = mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
      return make_error("cannot map ", bytes, " bytes for repacked weights: ", std::strerror(errno));
    b.p_ = static_cast<uint8_t*>(raw);
    b.bytes_ = want;
    return b;
  }
  // Over-map by one huge page and trim, so the buffer starts on a 2 MiB boundary.
  const size_t want = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* raw = mmap(nullptr, want + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED)
    return make_error("cannot map ", bytes, " bytes for repacked weights: ", std::strerror(errno));
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + want + kHugePage;
  if (end > aligned + want) munmap(reinterpret_cast<void*>(aligned + want), end - (aligned + want));
#ifdef MADV_HUGEPAGE
  madvise(reinterpret_cast<void*>(aligned), want, MADV_HUGEPAGE);  // advice only: fine if refused
#endif
  b.p_ = reinterpret_cast<uint8_t*>(aligned);
  b.bytes_ = want;
  return b;
}

PackedBuffer::~PackedBuffer() {
  if (p_ != nullptr) munmap(p_, bytes_);
}

PackedBuffer& PackedBuffer::operator=(PackedBuffer&& o) noexcept {
  if (this != &o) {
    if (p_ != nullptr) munmap(p_, bytes_);
    p_ = std::exchange(o.p_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

void release_mapped_pages(const void* p, size_t bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace popper::cpu
