// popper_fuzz_seeds TARGET OUT_DIR: writes TARGET's seed corpus, made from the committed
// fixtures (fuzz_target.h, extract_seeds), into OUT_DIR. `popper_fuzz_seeds --list` prints the
// targets. scripts/fuzz.sh runs it before each target; the committed seeds are added beside.
#include <cstdio>
#include <filesystem>
#include <string>

#include "falsifiers/fuzz/fuzz_target.h"

int main(int argc, char** argv) {
  using namespace popper::fuzz;
  if (argc == 2 && std::string(argv[1]) == "--list") {
    for (const auto& t : fuzz_targets()) std::printf("%s\n", t.name);
    return 0;
  }
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s TARGET OUT_DIR | --list\n", argv[0]);
    return 2;
  }
  const FuzzTarget* t = find_fuzz_target(argv[1]);
  if (t == nullptr) {
    std::fprintf(stderr, "%s: no fuzz target '%s' (--list names them)\n", argv[0], argv[1]);
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(argv[2], ec);
  const int n = t->extract_seeds ? t->extract_seeds(argv[2]) : 0;
  if (n < 0) return 1;
  std::printf("%s: %d seeds from the fixtures\n", t->name, n);
  return 0;
}
