// Falsifiers for `popper report`: the Mann-Whitney U test against brute force; a report from
// the fixture evidence (falsifiers/fixtures/report, made by make_fixtures.py) flags the known
// regression and not the known stable series, lists the noisy series apart, shows the verdict
// change; the HTML is self-contained and well formed, and loads in headless Chromium without
// console errors (a screenshot is saved beside this test).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include "engine/core/atomic_file.h"
#include "falsifiers/harness_repo_fixture.h"
#include "harness/report/format.h"
#include "harness/report/report.h"
#include "harness/run/process.h"
#include "harness/stats/mann_whitney.h"

namespace popper::harness {
namespace {
namespace fs = std::filesystem;
using testing::Cmd;

// p-values are sums of a few hundred terms: agreement to 1e-12 leaves room only for rounding.
constexpr double kPTolerance = 1e-12;
// Headless Chromium on a loaded 2-core CI machine: a page this size renders in ~4 s.
constexpr double kBrowserTimeoutS = 90;

std::string fixture_evidence() {
  return std::string(POPPER_SOURCE_DIR) + "/falsifiers/fixtures/report/evidence";
}

// Two-sided p by enumerating every split of the pooled samples (ties counted by U directly).
double brute_force_p(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> all = a;
  all.insert(all.end(), b.begin(), b.end());
  auto u_of = [&](const std::vector<bool>& in_a) {
    double u = 0;
    for (size_t i = 0; i < all.size(); ++i)
      for (size_t j = 0; j < all.size(); ++j)
        if (in_a[i] && !in_a[j]) u += all[i] > all[j] ? 1 : all[i] == all[j] ? 0.5 : 0;
    return u;
  };
  std::vector<bool> observed(all.size(), false);
  std::fill(observed.begin(), observed.begin() + static_cast<long>(a.size()), true);
  const double u_obs = u_of(observed);
  std::vector<bool> mask(all.size(), false);
  std::fill(mask.end() - static_cast<long>(a.size()), mask.end(), true);
  double total = 0, le = 0, ge = 0;
  do {
    double u = u_of(mask);
    total += 1;
    le += u <= u_obs + 1e-9;
    ge += u >= u_obs - 1e-9;
  } while (std::next_permutation(mask.begin(), mask.end()));
  return std::min(1.0, 2 * std::min(le, ge) / total);
}

TEST(Durations, ArePrintedAsPeopleReadThem) {
  EXPECT_EQ(format_duration(2.545e-05), "25 µs");
  EXPECT_EQ(format_duration(0.34), "340 ms");
  EXPECT_EQ(format_duration(1.234), "1.2 s");
  EXPECT_EQ(format_duration(184), "3 min 4 s");
  EXPECT_EQ(format_duration(7500), "2 h 5 min");
  EXPECT_EQ(format_duration(-1), "?");
}

TEST(MannWhitney, ExactPEqualsABruteForceCountOfEverySplit) {
  const std::vector<std::pair<std::vector<double>, std::vector<double>>> cases = {
      {{1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}},
      {{3.1, 0.2, 5.5, 4.4}, {1.5, 2.5, 6.5, 0.1, 7.7}},
      {{10.2, 9.9, 10.4, 10.0, 10.1, 9.8}, {8.0, 10.05, 7.9, 8.1, 9.95, 8.05}},
  };
  for (const auto& [a, b] : cases) {
    auto mw = mann_whitney_u(a, b);
    ASSERT_TRUE(mw);
    EXPECT_TRUE(mw->exact);
    EXPECT_NEAR(mw->p, brute_force_p(a, b), kPTolerance);
  }
  auto sep = mann_whitney_u({6, 7, 8, 9, 10}, {1, 2, 3, 4, 5});
  EXPECT_NEAR(sep->p, 2.0 / 252, kPTolerance);  // one split of C(10,5) on each side
  EXPECT_EQ(sep->cliffs_delta, 1);
  EXPECT_EQ(sep->u1, 25);
}

TEST(MannWhitney, TiesUseTheNormalApproximationCloseToTheExactCount) {
  std::vector<double> a{1, 2, 2, 3, 3, 3, 4, 5}, b{2, 3, 4, 4, 5, 5, 6, 6};
  auto mw = mann_whitney_u(a, b);
  ASSERT_TRUE(mw);
  EXPECT_FALSE(mw->exact);
  // The tie-corrected normal approximation with continuity correction tracks the permutation
  // p within a few hundredths at n = 8 + 8 (it is an approximation; 0.03 is its known slack here).
  EXPECT_NEAR(mw->p, brute_force_p(a, b), 0.03);
  auto swapped = mann_whitney_u(b, a);
  EXPECT_NEAR(swapped->p, mw->p, kPTolerance);
  EXPECT_NEAR(swapped->cliffs_delta, -mw->cliffs_delta, kPTolerance);
  auto same = mann_whitney_u({4, 4, 4}, {4, 4, 4});
  EXPECT_EQ(same->p, 1);
  EXPECT_FALSE(mann_whitney_u({}, {1.0}).has_value());
}

const Series* find_series(const Report& r, const std::string& item, const std::string& metric) {
  for (const auto& c : r.contracts)
    for (const auto& s : c.series)
      if (s.item_id == item && s.metric == metric) return &s;
  return nullptr;
}

const ItemRow* find_item(const Report& r, const std::string& id) {
  for (const auto& c : r.contracts)
    for (const auto& i : c.items)
      if (i.id == id) return &i;
  return nullptr;
}

class FixtureReport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto r = build_report(fixture_evidence(), {});
    ASSERT_TRUE(r.ok()) << r.message();
    report_ = new Report(std::move(*r));
  }
  static void TearDownTestSuite() { delete report_; }
  static Report* report_;
};
Report* FixtureReport::report_ = nullptr;

TEST_F(FixtureReport, FlagsTheKnownRegressionAndNotTheStableSeries) {
  RecordProperty("falsification_id", "report: the fixture's regression is flagged, its stable series is not");
  ASSERT_TRUE(report_->integrity_problems.empty()) << report_->integrity_problems.front();
  const Series* reg = find_series(*report_, "FALSIFY-DEMO_DECODE_V1_001", "tokens_per_second");
  ASSERT_NE(reg, nullptr);
  ASSERT_EQ(reg->points.size(), 5u);
  ASSERT_TRUE(reg->change);
  EXPECT_EQ(reg->change->kind, ChangeKind::kRegression);
  EXPECT_LT(reg->change->test.p, kRegressionAlpha);
  EXPECT_LT(reg->change->relative, -kMinRelativeChange);
  EXPECT_FALSE(reg->unstable);
  const Series* stable = find_series(*report_, "FALSIFY-DEMO_DECODE_V1_002", "speedup");
  ASSERT_NE(stable, nullptr);
  ASSERT_TRUE(stable->change);
  EXPECT_EQ(stable->change->kind, ChangeKind::kNone) << "p " << stable->change->test.p;
  EXPECT_FALSE(stable->unstable);
  const Series* err = find_series(*report_, "FALSIFY-DEMO_ACCURACY_V1_001", "max_abs_error");
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->better, -1) << "a <= threshold makes lower better";
  EXPECT_EQ(err->change->kind, ChangeKind::kNone);
  ASSERT_EQ(err->thresholds.size(), 1u);
  EXPECT_EQ(err->thresholds[0].op, "<=");
}

TEST_F(FixtureReport, ListsTheNoisySeriesApartAsUnstable) {
  const Series* noisy = find_series(*report_, "FALSIFY-DEMO_DECODE_V1_004", "tokens_per_second");
  ASSERT_NE(noisy, nullptr);
  EXPECT_TRUE(noisy->unstable);
  EXPECT_GT(noisy->latest_cv, kUnstableCv);
  int unstable = 0;
  for (const auto& c : report_->contracts)
    for (const auto& s : c.series) unstable += s.unstable;
  EXPECT_EQ(unstable, 1);
}

TEST_F(FixtureReport, ShowsTheVerdictChangeSinceThePreviousRun) {
  const ItemRow* row = find_item(*report_, "FALSIFY-DEMO_DECODE_V1_003");
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->verdict, "falsified");
  ASSERT_TRUE(row->previous_verdict);
  EXPECT_EQ(*row->previous_verdict, "survived");
  EXPECT_EQ(report_->totals.at("falsified"), 1);
  EXPECT_EQ(report_->contracts.size(), 2u);
}

// Tag balance over the HTML (void elements excepted); returns the first problem or "".
std::string check_tags(const std::string& html) {
  static const std::set<std::string> kVoid{"meta", "link", "br",       "hr",   "img", "input", "circle",
                                           "line", "rect", "polyline", "path", "col", "wbr",   "source"};
  std::vector<std::string> stack;
  std::regex tag(R"(<(/?)([a-zA-Z][a-zA-Z0-9]*)([^>]*?)(/?)>)");
  // Skip the <style> and <script> bodies: their text is not markup.
  std::string text =
      std::regex_replace(html, std::regex(R"((<style>|<script>)[\s\S]*?(</style>|</script>))"), "$1$2");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), tag); it != std::sregex_iterator(); ++it) {
    std::string name = (*it)[2];
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    bool closing = (*it)[1] == "/", self_closing = (*it)[4] == "/";
    if (!closing && (self_closing || kVoid.count(name))) continue;
    if (!closing) {
      stack.push_back(name);
    } else if (!kVoid.count(name)) {
      if (stack.empty() || stack.back() != name)
        return "</" + name + "> closes <" + (stack.empty() ? "nothing" : stack.back()) + "> at offset " +
               std::to_string(it->position());
      stack.pop_back();
    }
  }
  return stack.empty() ? "" : "unclosed <" + stack.back() + ">";
}

TEST_F(FixtureReport, HtmlIsWellFormedSelfContainedAndCarriesEveryItem) {
  std::string html = render_report_html(*report_);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(check_tags(html), "");
  // No network: the only URL is the SVG namespace, which is a name, not a fetch.
  std::string no_ns = std::regex_replace(html, std::regex("xmlns=\"http://www.w3.org/2000/svg\""), "");
  EXPECT_EQ(no_ns.find("http://"), std::string::npos);
  EXPECT_EQ(no_ns.find("https://"), std::string::npos);
  EXPECT_EQ(html.find(" src="), std::string::npos);
  for (const auto& c : report_->contracts)
    for (const auto& i : c.items) EXPECT_NE(html.find(i.id), std::string::npos) << i.id;
  EXPECT_NE(html.find("class=\"k-regression\">regression"), std::string::npos);
  EXPECT_NE(html.find("<svg class=\"chart\""), std::string::npos);
  EXPECT_NE(html.find("class=\"threshold\""), std::string::npos);
  // A check that cannot fail is no check: a broken page is caught.
  EXPECT_NE(check_tags(html.substr(0, html.size() / 2)), "");
  std::string md = render_report_markdown(*report_);
  EXPECT_NE(md.find("| regression | `FALSIFY-DEMO_DECODE_V1_001`"), std::string::npos) << md;
  EXPECT_NE(md.find("survived → falsified"), std::string::npos);
}

TEST(Report, AnEditedEvidenceFileIsShownAsAnIntegrityProblem) {
  testing::TempDir dir;
  fs::copy(fixture_evidence(), dir / "evidence", fs::copy_options::recursive);
  std::string victim;
  for (const auto& e : fs::recursive_directory_iterator(dir / "evidence"))
    if (e.path().extension() == ".json") victim = e.path().string();
  std::string text = read_file(victim).value();
  text[text.find("survived")] = 'S';
  ASSERT_TRUE(write_file_atomic(victim, text).ok());
  auto r = build_report(dir / "evidence", {});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->integrity_problems.size(), 1u);
  EXPECT_NE(r->integrity_problems[0].find("(file changed)"), std::string::npos);
  EXPECT_NE(render_report_html(*r).find("Evidence integrity: 1 problem(s)"), std::string::npos);
}

TEST(Report, CliWritesIndexHtmlAndReportMdAndPrintsThePath) {
  testing::TempRepo repo;
  repo.init({});
  Cmd c = repo.popper({"report", "--evidence", fixture_evidence(), "-o", repo.outside("reports")});
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.out, repo.outside("reports") + "/index.html\n");
  EXPECT_TRUE(fs::exists(repo.outside("reports/report.md")));
  EXPECT_NE(c.err.find("1 regression"), std::string::npos) << c.err;
  Cmd missing = repo.popper({"report", "--evidence", repo.outside("nope")});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("no such evidence directory"), std::string::npos) << missing.err;
}

// --- Headless Chromium -------------------------------------------------------------------

std::string find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (fs::exists(p)) return p;
  return "";
}

struct BrowserRun {
  int code = -1;
  std::string dom;
  std::vector<std::string> console;  // chromium's "CONSOLE" log lines: messages, uncaught errors
};

// Loads `url` in headless Chromium with networking disabled; `extra` picks --dump-dom or --screenshot.
BrowserRun load_in_chromium(const std::string& chromium, const std::string& url, const std::string& extra,
                            const testing::TempDir& scratch) {
  SpawnOptions o;
  o.argv = {chromium,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--hide-scrollbars",
            "--user-data-dir=" + (scratch / "profile"),
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--window-size=1400,1900",
            "--enable-logging=stderr",
            "--v=0",
            extra,
            url};
  o.stdout_path = scratch / "stdout";
  o.stderr_path = scratch / "stderr";
  o.timeout_s = kBrowserTimeoutS;
  o.env_extra = {{"HOME", scratch.path()}};
  ProcessResult pr = run_process(o);
  BrowserRun r;
  r.code = pr.exited_ok() ? 0 : pr.exit_code;
  auto out = read_file(scratch / "stdout");
  auto errr = read_file(scratch / "stderr");
  r.dom = out.ok() ? *out : "";
  std::string err = errr.ok() ? *errr : "";
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);)
    if (line.find(":CONSOLE") != std::string::npos) r.console.push_back(line);
  return r;
}

class Browser : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium_ = find_chromium();
    if (chromium_.empty()) GTEST_SKIP() << "chromium is not installed (apt-get install chromium)";
  }
  std::string chromium_;
  testing::TempDir scratch_;
};

TEST_F(Browser, TheConsoleCheckCatchesAPageWithAScriptError) {
  ASSERT_TRUE(write_file_atomic(scratch_ / "bad.html",
                                "<!DOCTYPE html><html><body><p>x</p><script>null.f();</script></body></html>")
                  .ok());
  BrowserRun r = load_in_chromium(chromium_, "file://" + (scratch_ / "bad.html"), "--dump-dom", scratch_);
  ASSERT_EQ(r.code, 0);
  ASSERT_FALSE(r.console.empty())
      << "chromium no longer logs console errors this way; the check below is blind";
  EXPECT_NE(r.console[0].find("Uncaught TypeError"), std::string::npos) << r.console[0];
}

TEST_F(Browser, TheReportLoadsInHeadlessChromiumWithoutConsoleErrors) {
  RecordProperty("falsification_id", "report: the HTML loads in headless Chromium without errors");
  auto rep = build_report(fixture_evidence(), {});
  ASSERT_TRUE(rep.ok());
  const std::string page = scratch_ / "index.html";
  ASSERT_TRUE(write_file_atomic(page, render_report_html(*rep)).ok());
  BrowserRun dom = load_in_chromium(chromium_, "file://" + page, "--dump-dom", scratch_);
  ASSERT_EQ(dom.code, 0);
  for (const auto& l : dom.console) ADD_FAILURE() << "console: " << l;
  EXPECT_NE(dom.dom.find("data-ready=\"1\""), std::string::npos)
      << "the inline script did not run to its end";
  EXPECT_NE(dom.dom.find("FALSIFY-DEMO_DECODE_V1_001"), std::string::npos);
  EXPECT_NE(dom.dom.find("<svg class=\"chart\""), std::string::npos);

  const std::string shot = testing::build_dir() + "/falsifiers/report-front-page.png";
  fs::remove(shot);
  BrowserRun s = load_in_chromium(chromium_, "file://" + page, "--screenshot=" + shot, scratch_);
  ASSERT_EQ(s.code, 0);
  for (const auto& l : s.console) ADD_FAILURE() << "console: " << l;
  auto png = read_file(shot);
  ASSERT_TRUE(png.ok()) << "no screenshot written to " << shot;
  EXPECT_EQ(png->substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  RecordProperty("screenshot", shot);
}

}  // namespace
}  // namespace popper::harness
