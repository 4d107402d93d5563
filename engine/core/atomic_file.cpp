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

Status write_all(int fd, std::string_view data, const std::string& path) {
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(path, ": write failed: ", std::strerror(errno));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return Status::success();
}

}  // namespace

Status write_file_atomic(const std::string& path, std::string_view contents) {
  namespace fs = std::filesystem;
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return make_error(path, ": cannot create temp file in ", dir.string(), ": ", std::strerror(errno));
  Status st = write_all(fd, contents, tmpl);
  // Fault evidence_skips_fsync: the bytes may still be in the page cache when the rename lands.
  const bool sync = !fault_on(Fault::kEvidenceSkipsFsync);
  if (st.ok() && sync && ::fsync(fd) != 0) st = make_error(tmpl, ": fsync failed: ", std::strerror(errno));
  // mkstemp makes 0600; give the file the usual permissions.
  if (st.ok()) ::fchmod(fd, 0644);
  ::close(fd);
  if (st.ok() && ::rename(tmpl.c_str(), path.c_str()) != 0)
    st = make_error(path, ": rename from temp file failed: ", std::strerror(errno));
  if (!st.ok()) {
    ::unlink(tmpl.c_str());
    return st;
  }
  int dfd = sync ? ::open(dir.c_str(), O_RDONLY | O_DIRECTORY) : -1;
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::success();
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
