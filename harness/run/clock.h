// Wall-clock time stamps (UTC) for run records, evidence and sign-off statements.
#pragma once

#include <string>

namespace popper::harness {

std::string utc_timestamp_iso();      // "2026-11-25T22:41:07Z"
std::string utc_timestamp_compact();  // "20261125T224107Z"
std::string utc_date();               // "2026-11-25"

}  // namespace popper::harness
