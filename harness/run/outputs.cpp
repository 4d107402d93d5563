#include "harness/run/outputs.h"

#include <cmath>
#include <set>
#include <sstream>

namespace popper::harness {
namespace {

using nlohmann::json;

Result<json> parse_json(const std::string& text, const char* what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return make_error(what, " is not valid JSON: ", e.what());
  }
}

// GoogleTest prints a skipped test as
//   [ RUN      ] Suite.Name
//   file.cpp:12: Skipped
//   <reason lines>
//   [  SKIPPED ] Suite.Name (0 ms)
std::map<std::string, std::string> skip_reasons(const std::string& stdout_text) {
  std::map<std::string, std::string> out;
  std::istringstream in(stdout_text);
  std::string line, current, reason;
  bool in_skip = false;
  while (std::getline(in, line)) {
    if (line.rfind("[ RUN      ] ", 0) == 0) {
      current = trim(line.substr(13));
      reason.clear();
      in_skip = false;
    } else if (line.rfind("[  SKIPPED ] ", 0) == 0 && !current.empty()) {
      out[current] = trim(reason);
      current.clear();
    } else if (!current.empty()) {
      if (line.size() >= 9 && line.substr(line.size() - 9) == ": Skipped") {
        in_skip = true;
      } else if (in_skip) {
        reason += (reason.empty() ? "" : " ") + trim(line);
      }
    }
  }
  return out;
}

double parse_seconds(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    try {
      return std::stod(v.get<std::string>());  // "0.012s"
    } catch (const std::exception&) {
    }
  }
  return 0;
}

}  // namespace

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

Result<std::vector<double>> parse_number_list(const std::string& s) {
  std::vector<double> out;
  std::istringstream in(s);
  std::string tok;
  while (std::getline(in, tok, ',')) {
    tok = trim(tok);
    try {
      size_t used = 0;
      double v = std::stod(tok, &used);
      // stod reads "nan" and "inf" too: a figure that is not finite would slip past a threshold.
      if (used != tok.size() || !std::isfinite(v)) throw std::invalid_argument(tok);
      out.push_back(v);
    } catch (const std::exception&) {
      return make_error("'", s, "' is not a comma-separated list of finite numbers");
    }
  }
  if (out.empty()) return make_error("'", s, "' holds no numbers");
  return out;
}

Result<ParsedOutput> parse_gtest_output(const std::string& json_text, const std::string& stdout_text) {
  auto doc = parse_json(json_text, "the --gtest_output JSON");
  if (!doc.ok()) return doc.error();
  ParsedOutput out;
  auto reasons = skip_reasons(stdout_text);
  static const std::set<std::string> kStandard = {"name", "status",     "result",     "timestamp",
                                                  "time", "classname",  "failures",   "file",
                                                  "line", "type_param", "value_param"};
  try {
    if (!doc->contains("testsuites") || !(*doc)["testsuites"].is_array())
      return make_error("the --gtest_output JSON has no 'testsuites' list");
    for (const auto& suite : (*doc)["testsuites"]) {
      for (const auto& tc : suite.value("testsuite", json::array())) {
        TestCaseResult r;
        r.name = suite.value("name", "") + "." + tc.value("name", "");
        r.time_s = parse_seconds(tc.value("time", json()));
        for (const auto& f : tc.value("failures", json::array()))
          r.failures.push_back(f.value("failure", ""));
        std::string status = tc.value("status", "RUN");
        std::string result = tc.value("result", "COMPLETED");
        if (status == "NOTRUN" || result == "SUPPRESSED")
          r.status = "not_run";
        else if (!r.failures.empty())
          r.status = "failed";
        else if (result == "SKIPPED")
          r.status = "skipped";
        else
          r.status = "passed";
        if (r.status == "skipped") {
          auto it = reasons.find(r.name);
          r.skip_reason =
              it != reasons.end() && !it->second.empty() ? it->second : "skipped (no reason given)";
        }
        for (auto it = tc.begin(); it != tc.end(); ++it) {
          if (kStandard.count(it.key())) continue;
          std::string v = it->is_string() ? it->get<std::string>() : it->dump();
          r.properties[it.key()] = v;
          if (it.key().rfind("metric.", 0) == 0) {
            // A failed test may have measured nothing (every request failed, say): its failure is
            // the verdict, not malformed output. A passing test must report numbers.
            if (!r.failures.empty() && trim(v).empty()) continue;
            auto nums = parse_number_list(v);
            if (!nums.ok()) return make_error(r.name, ": property ", it.key(), ": ", nums.message());
            auto& dst = out.metrics[r.name][it.key().substr(7)];
            dst.insert(dst.end(), nums->begin(), nums->end());
          }
        }
        out.tests.push_back(std::move(r));
      }
    }
  } catch (const json::exception& e) {
    return make_error("the --gtest_output JSON has an unexpected shape: ", e.what());
  }
  return out;
}

Result<ParsedOutput> parse_benchmark_output(const std::string& json_text) {
  auto doc = parse_json(json_text, "the --benchmark_out JSON");
  if (!doc.ok()) return doc.error();
  ParsedOutput out;
  static const std::set<std::string> kMeta = {"family_index", "per_family_instance_index",
                                              "repetitions",  "repetition_index",
                                              "threads",      "iterations"};
  try {
    if (!doc->contains("benchmarks") || !(*doc)["benchmarks"].is_array())
      return make_error("the --benchmark_out JSON has no 'benchmarks' list");
    out.context = doc->value("context", json::object());
    for (const auto& b : (*doc)["benchmarks"]) {
      std::string name = b.value("run_name", b.value("name", ""));
      if (b.value("error_occurred", false)) {
        std::string msg = b.value("error_message", "");
        std::string entry = name + ": " + msg;
        if (msg.rfind("inconclusive:", 0) == 0)
          out.inconclusive.push_back(name + ": " + trim(msg.substr(13)));
        else
          out.errors.push_back(entry);
        continue;
      }
      if (b.value("run_type", "iteration") != "iteration") continue;  // skip aggregates: we use raw samples
      for (auto it = b.begin(); it != b.end(); ++it) {
        if (!it->is_number() || kMeta.count(it.key())) continue;
        out.metrics[name][it.key()].push_back(it->get<double>());
      }
    }
  } catch (const json::exception& e) {
    return make_error("the --benchmark_out JSON has an unexpected shape: ", e.what());
  }
  // Keep error/skip lists unique (every repetition repeats the message).
  for (auto* v : {&out.errors, &out.inconclusive}) {
    std::set<std::string> seen;
    std::vector<std::string> u;
    for (auto& s : *v)
      if (seen.insert(s).second) u.push_back(s);
    *v = u;
  }
  return out;
}

Result<ParsedOutput> parse_metrics_file(const std::string& json_text, const std::string& source) {
  auto doc = parse_json(json_text, "the metrics file");
  if (!doc.ok()) return doc.error();
  ParsedOutput out;
  if (!doc->is_object() || !doc->contains("metrics") || !(*doc)["metrics"].is_object())
    return make_error("the metrics file must be {\"metrics\": {\"<name>\": [numbers]}}");
  for (auto it = (*doc)["metrics"].begin(); it != (*doc)["metrics"].end(); ++it) {
    auto& dst = out.metrics[source][it.key()];
    if (it->is_number()) {
      dst.push_back(it->get<double>());
    } else if (it->is_array()) {
      for (const auto& v : *it) {
        if (!v.is_number()) return make_error("metrics.", it.key(), ": expected numbers");
        dst.push_back(v.get<double>());
      }
    } else {
      return make_error("metrics.", it.key(), ": expected a number or a list of numbers");
    }
  }
  return out;
}

}  // namespace popper::harness
