#include "engine/core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/core/faults.h"

namespace popper {
namespace {

// Bytes gathered before each write(2).
constexpr size_t kBufferBytes = size_t{4} << 20;

// Makes a rename in `dir` durable. Best effort: a directory that cannot be opened (or a file
// system without directory fsync) costs durability on power loss, never correctness.
void sync_dir(const std::string& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

Result<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::open(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  // Built by appends: GCC 12's -Wrestrict misfires on "." + string + "...".
  std::string name = ".";
  name += target.filename().string();
  name += ".tmp.XXXXXX";
  std::string tmp = (dir / name).string();
  // Fault atomic_write_in_place: the "temp file" is the target itself, truncated, and commit's
  // rename is a no-op (rename(2) onto the same name).
  if (fault_on(Fault::kAtomicWriteInPlace)) {
    const int in_place = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in_place < 0) return make_error(path, ": cannot open: ", std::strerror(errno));
    return std::unique_ptr<AtomicFileWriter>(new AtomicFileWriter(path, path, dir.string(), in_place));
  }
  int fd = ::mkstemp(tmp.data());
  if (fd < 0)
    return make_error(path, ": cannot create temp file in ", dir.string(), ": ", std::strerror(errno));
  return std::unique_ptr<AtomicFileWriter>(new AtomicFileWriter(path, tmp, dir.string(), fd));
}

AtomicFileWriter::AtomicFileWriter(std::string path, std::string tmp, std::string dir, int fd)
    : path_(std::move(path)), tmp_(std::move(tmp)), dir_(std::move(dir)), fd_(fd) {}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

Status AtomicFileWriter::write_all(const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return make_error(tmp_, ": write failed: ", std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::success();
}

Status AtomicFileWriter::flush() {
  Status st = write_all(buf_.data(), buf_.size());
  buf_.clear();
  return st;
}

Status AtomicFileWriter::append(const void* data, size_t n) {
  POPPER_CHECK(fd_ >= 0 && !committed_, "append after commit");
  const auto* p = static_cast<const uint8_t*>(data);
  if (buf_.size() + n <= kBufferBytes) {
    buf_.insert(buf_.end(), p, p + n);
    return Status::success();
  }
  POPPER_RETURN_IF_ERROR(flush());
  if (n >= kBufferBytes) return write_all(p, n);
  buf_.insert(buf_.end(), p, p + n);
  return Status::success();
}

Status AtomicFileWriter::commit() {
  POPPER_CHECK(fd_ >= 0 && !committed_, "commit twice");
  Status st = flush();
  // Fault evidence_skips_fsync: the bytes may still be in the page cache when the rename lands.
  const bool sync = !fault_on(Fault::kEvidenceSkipsFsync);
  if (st.ok() && sync && ::fsync(fd_) != 0) st = make_error(tmp_, ": fsync failed: ", std::strerror(errno));
  if (st.ok()) ::fchmod(fd_, 0644);  // mkstemp makes 0600
  if (::close(fd_) != 0 && st.ok()) st = make_error(tmp_, ": close failed: ", std::strerror(errno));
  fd_ = -1;
  if (st.ok() && ::rename(tmp_.c_str(), path_.c_str()) != 0)
    st = make_error(path_, ": rename from temp file failed: ", std::strerror(errno));
  if (!st.ok()) return st;  // the destructor removes the temp file
  committed_ = true;
  if (sync) sync_dir(dir_);
  return Status::success();
}

Status rename_durably(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    return make_error(to, ": cannot move ", from, " into place: ", std::strerror(errno));
  const std::filesystem::path target(to);
  sync_dir(target.has_parent_path() ? target.parent_path().string() : std::string("."));
  return Status::success();
}

Status write_file_atomic(const std::string& path, std::string_view contents) {
  auto w = AtomicFileWriter::open(path);
  if (!w.ok()) return w.error();
  POPPER_RETURN_IF_ERROR((*w)->append(contents.data(), contents.size()));
  return (*w)->commit();
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path, ": cannot open: ", std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return make_error(path, ": read failed");
  return ss.str();
}

}  // namespace popper
