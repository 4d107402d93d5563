#include "harness/signoff/signoff.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "engine/core/atomic_file.h"
#include "engine/core/sha256.h"
#include "harness/evidence/evidence.h"
#include "harness/evidence/provenance.h"
#include "harness/run/runner.h"
#include "harness/signoff/crypto.h"

namespace popper::harness {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kManifest = "MANIFEST";
constexpr const char* kStatement = "statement.json";
constexpr const char* kEnvelope = "statement.dsse.json";
constexpr const char* kSignerPub = "signer.pub.pem";

struct Evidence {
  std::string rel;  // relative to the evidence dir
  json doc;
};

// A contract's evidence files, newest first.
std::vector<Evidence> evidence_newest_first(const std::string& evidence_dir, const std::string& contract,
                                            std::vector<std::string>& problems) {
  std::vector<Evidence> out;
  std::vector<std::string> files = list_evidence(evidence_dir, contract);
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    const std::string& rel = *it;
    auto doc = read_evidence((fs::path(evidence_dir) / rel).string());
    if (!doc.ok()) {
      problems.push_back(doc.message());
      continue;
    }
    out.push_back({rel, std::move(*doc)});
  }
  return out;
}

std::string manifest_text(const std::map<std::string, std::string>& files) {
  std::string out;
  for (const auto& [path, text] : files) out += sha256_hex(text) + "  " + path + "\n";
  return out;
}

// "<sha256>  <path>" lines -> path -> digest; malformed lines become problems.
std::map<std::string, std::string> parse_manifest(const std::string& text,
                                                  std::vector<std::string>& problems) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.size() < 67 || line.substr(64, 2) != "  " ||
        line.substr(0, 64).find_first_not_of("0123456789abcdef") != std::string::npos) {
      problems.push_back(std::string(kManifest) + ":" + std::to_string(n) +
                         ": malformed line (want '<sha256>  <path>')");
      continue;
    }
    out[line.substr(66)] = line.substr(0, 64);
  }
  return out;
}

}  // namespace

SignoffOutcome create_signoff(const SignoffOptions& opts) {
  SignoffOutcome out;
  auto refuse = [&](std::string why) {
    out.problems.push_back(std::move(why));
    if (out.exit_code == 0) out.exit_code = 1;  // a bad flag (2) stays the answer
  };
  std::error_code ec;
  if (fs::exists(opts.out_dir, ec)) {
    out.problems.push_back(opts.out_dir +
                           ": already exists; a release is signed off once (pick another --release or -o)");
    out.exit_code = 2;
    return out;
  }
  std::string key_pem;
  if (!opts.key_path.empty()) {
    auto k = read_file(opts.key_path);
    if (!k.ok()) {
      out.problems.push_back(k.message());
      out.exit_code = 2;
      return out;
    }
    key_pem = *k;
    if (auto pub = ed25519_public_pem_from_private(key_pem, opts.key_path); !pub.ok()) {
      out.problems.push_back(pub.message());
      out.exit_code = 2;
      return out;
    }
  }
  auto exe_sha = sha256_file(opts.popper_exe);
  if (!exe_sha.ok()) {
    out.problems.push_back(exe_sha.message());
    out.exit_code = 2;
    return out;
  }

  // 1. A clean tree at a known commit.
  std::string ev_prefix = fs::relative(opts.evidence_dir, opts.repo_root, ec).string();
  if (ec || ev_prefix.rfind("..", 0) == 0) ev_prefix = "evidence";
  GitState git = read_git_state(opts.repo_root, ev_prefix + "/");
  if (!git.available) {
    refuse(opts.repo_root + ": not a git checkout; a sign-off names a commit");
    return out;
  }
  if (git.dirty)
    refuse("the working tree has uncommitted changes (" + std::to_string(git.dirty_paths.size()) +
           " paths, e.g. " + git.dirty_paths.front() + "); sign-off certifies committed code only");
  // 2. The evidence is intact.
  VerifyReport vr = verify_evidence(opts.evidence_dir);
  for (const auto& p : vr.problems) refuse("verify-evidence: " + p);

  // 3. Every required item survived at this commit on every required profile, or is waived.
  std::map<std::string, std::string> waivers;  // id -> reason
  for (const auto& w : opts.waivers) {
    bool known = false;
    for (const Contract* c : opts.contracts) known = known || c->find_item(w.id) != nullptr;
    if (!known || w.reason.empty() || !waivers.emplace(w.id, w.reason).second) {
      out.problems.push_back("--waive " + w.id + ": " +
                             (!known             ? "no such item in the contracts given"
                              : w.reason.empty() ? "needs a --reason"
                                                 : "given twice"));
      out.exit_code = 2;
    }
  }
  if (out.exit_code == 2) return out;
  json waivers_j = json::array();
  std::vector<std::optional<std::string>> profiles;
  for (const auto& p : opts.profiles) profiles.emplace_back(p);
  if (profiles.empty()) profiles.emplace_back(std::nullopt);
  json contracts_j = json::array();
  std::map<std::string, std::string> bundle;  // bundle path -> bytes
  std::map<std::string, std::string> models;  // name -> sha256
  for (const Contract* c : opts.contracts) {
    std::vector<std::string> load_problems;
    std::vector<Evidence> evs = evidence_newest_first(opts.evidence_dir, c->name, load_problems);
    for (const auto& p : load_problems) refuse(p);
    bundle["contracts/" + fs::path(c->path).filename().string()] = c->text;
    json items_j = json::array();
    for (const Item& item : c->items) {
      const bool required = item.required && item.blocked_on.empty();
      for (const auto& prof : profiles) {
        std::string want_profile = item.falsifier ? effective_binding(*item.falsifier, prof).profile : "";
        const Evidence* found = nullptr;
        const json* found_item = nullptr;
        for (const auto& e : evs) {
          const json& g = e.doc["provenance"]["git"];
          if (g.value("commit", "") != git.commit || g.value("dirty", false)) continue;
          if (e.doc["contract"].value("claims_sha256", "") != c->claims_sha256) continue;
          for (const auto& it : e.doc["items"])
            if (it.value("id", "") == item.id && it.value("profile", "") == want_profile) found_item = &it;
          if (found_item) {
            found = &e;
            break;
          }
        }
        std::string where = item.id + (want_profile.empty() ? "" : " (profile " + want_profile + ")");
        json ij{{"id", item.id}, {"required", required}, {"profile", want_profile}};
        if (!found) {
          ij["verdict"] = "not run";
          if (waivers.count(item.id)) {
            refuse(c->name + ": " + where +
                   ": --waive needs a recorded verdict to replace, and there is none from commit " +
                   git.short_commit);
          }
          if (required)
            refuse(c->name + ": " + where + ": no evidence from commit " + git.short_commit +
                   " with the current claims; run `popper run" + (prof ? " --profile " + *prof : "") +
                   "` first");
        } else {
          std::string verdict = found_item->value("verdict", "error");
          ij["verdict"] = verdict;
          ij["reason"] = found_item->value("reason", "");
          ij["evidence"] = "evidence/" + found->rel;
          auto text = read_file((fs::path(opts.evidence_dir) / found->rel).string());
          if (text.ok())
            bundle["evidence/" + found->rel] = *text;  // byte for byte, as MANIFEST'd
          else
            refuse(text.message());
          // A survived check must also have survived honestly: a control that did not falsify
          // leaves the verdict standing on a check not shown able to fail.
          const RecordedControl ctl = recorded_control(*found_item);
          if (ctl.present) ij["control"] = {{"faults", ctl.faults}, {"verdict", ctl.label()}};
          std::string why_not;
          if (verdict != "survived")
            why_not = verdict;
          else if (ctl.ran && ctl.verdict != Verdict::kFalsified)
            why_not = ctl.unfalsifiable()
                          ? "unfalsifiable (its control survived)"
                          : std::string("survived, but its control was ") + verdict_name(ctl.verdict);
          auto w = waivers.find(item.id);
          if (w != waivers.end()) {
            if (verdict == "falsified") {
              refuse(c->name + ": " + where + " is falsified in evidence/" + found->rel +
                     "; a falsified item can never be waived");
            } else if (why_not.empty()) {
              out.problems.push_back("--waive " + item.id + ": it survived in evidence/" + found->rel +
                                     "; there is nothing to waive");
              out.exit_code = 2;
            } else {
              json wj{{"contract", c->name},
                      {"id", item.id},
                      {"profile", want_profile},
                      {"reason", w->second},
                      {"replaces",
                       {{"verdict", why_not},
                        {"reason", found_item->value("reason", "")},
                        {"evidence", "evidence/" + found->rel}}}};
              ij["waived"] = {{"reason", w->second}, {"replaces", why_not}};
              waivers_j.push_back(wj);
              why_not.clear();
            }
          }
          if (required && !why_not.empty())
            refuse(c->name + ": " + where + " is " + why_not + " in evidence/" + found->rel + ": " +
                   found_item->value("reason", "") +
                   (verdict == "falsified" ? "" : " (waive it with --waive " + item.id + " --reason TEXT)"));
          if (found_item->contains("model") && (*found_item)["model"].contains("sha256"))
            models[(*found_item)["model"].value("name", "")] = (*found_item)["model"].value("sha256", "");
        }
        items_j.push_back(ij);
      }
    }
    contracts_j.push_back({{"name", c->name},
                           {"version", c->version},
                           {"path", "contracts/" + fs::path(c->path).filename().string()},
                           {"sha256", c->sha256},
                           {"claims_sha256", c->claims_sha256},
                           {"items", items_j}});
  }
  if (out.exit_code != 0) return out;

  // The statement.
  json subjects = json::array();
  subjects.push_back({{"name", "popper"},
                      {"digest", {{"sha256", *exe_sha}}},
                      {"annotations", {{"kind", "binary"}, {"version", popper_version()}}}});
  for (const auto& [name, sha] : models)
    subjects.push_back(
        {{"name", "model:" + name}, {"digest", {{"sha256", sha}}}, {"annotations", {{"kind", "model"}}}});
  for (const auto& [path, text] : bundle)
    if (path.rfind("contracts/", 0) == 0)
      subjects.push_back({{"name", path},
                          {"digest", {{"sha256", sha256_hex(text)}}},
                          {"annotations", {{"kind", "contract"}}}});
  json files = json::array();
  for (const auto& [path, text] : bundle) files.push_back({{"path", path}, {"sha256", sha256_hex(text)}});
  json profiles_j = json::array();
  for (const auto& p : opts.profiles) profiles_j.push_back(p);
  json statement{{"_type", kInTotoStatementType},
                 {"subject", subjects},
                 {"predicateType", kSignoffPredicateType},
                 {"predicate",
                  {{"release", opts.release},
                   {"signed_off_at", utc_timestamp_iso()},
                   {"commit", git.commit},
                   {"popper_version", popper_version()},
                   {"profiles", profiles_j},
                   {"contracts", contracts_j},
                   {"waivers", waivers_j},
                   {"files", files},
                   {"evidence_files_verified", vr.files_checked}}}};
  const std::string statement_text = statement.dump(2) + "\n";
  bundle[kStatement] = statement_text;
  if (!key_pem.empty()) {
    std::string pae = dsse_pae(kInTotoPayloadType, statement_text);
    auto sig = ed25519_sign(key_pem, opts.key_path, pae);
    auto pub = ed25519_public_pem_from_private(key_pem, opts.key_path);
    if (!sig.ok() || !pub.ok()) {
      out.problems.push_back(!sig.ok() ? sig.message() : pub.message());
      out.exit_code = 2;
      return out;
    }
    auto keyid = ed25519_keyid_from_public_pem(*pub, opts.key_path);
    out.keyid = keyid.ok() ? *keyid : "";
    json env{{"payloadType", kInTotoPayloadType},
             {"payload", base64_encode(statement_text)},
             {"signatures", json::array({{{"keyid", out.keyid}, {"sig", base64_encode(*sig)}}})}};
    bundle[kEnvelope] = env.dump(2) + "\n";
    bundle[kSignerPub] = *pub;
  }
  const std::string manifest = manifest_text(bundle);

  // Built beside the target, renamed into place: whole or absent.
  fs::path target(opts.out_dir);
  fs::path tmp =
      target.parent_path() / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  bundle[kManifest] = manifest;
  for (const auto& [path, text] : bundle) {
    fs::create_directories((tmp / path).parent_path(), ec);
    Status st = write_file_atomic((tmp / path).string(), text);
    if (!st.ok()) {
      fs::remove_all(tmp, ec);
      out.problems.push_back(st.message());
      out.exit_code = 2;
      return out;
    }
    out.files.push_back(path);
  }
  // rename(2) of a directory onto a name that does not exist (checked above) is atomic.
  if (Status moved = rename_durably(tmp.string(), target.string()); !moved.ok()) {
    fs::remove_all(tmp, ec);
    out.problems.push_back("the bundle: " + moved.message());
    out.exit_code = 2;
  }
  return out;
}

VerifySignoffOutcome verify_signoff(const std::string& bundle_dir, const std::string& pubkey_path) {
  VerifySignoffOutcome out;
  auto bad = [&](std::string s) { out.problems.push_back(std::move(s)); };
  std::error_code ec;
  if (!fs::is_directory(bundle_dir, ec)) {
    bad(bundle_dir + ": no such bundle directory");
    return out;
  }
  const fs::path root(bundle_dir);
  auto manifest_text_r = read_file((root / kManifest).string());
  if (!manifest_text_r.ok()) {
    bad(std::string(kManifest) + ": missing or unreadable (" + manifest_text_r.message() + ")");
    return out;
  }
  std::map<std::string, std::string> listed = parse_manifest(*manifest_text_r, out.problems);
  std::map<std::string, std::string> texts, actual;  // rel -> bytes, sha256
  for (const auto& [rel, digest] : listed) {
    auto text = read_file((root / rel).string());
    if (!text.ok()) {
      bad(rel + ": listed in MANIFEST but missing or unreadable");
      continue;
    }
    ++out.files_checked;
    actual[rel] = sha256_hex(*text);
    texts[rel] = std::move(*text);
  }
  for (const auto& e : fs::recursive_directory_iterator(root, ec)) {
    if (!e.is_regular_file()) continue;
    std::string rel = fs::relative(e.path(), root).string();
    if (rel != kManifest && !listed.count(rel)) bad(rel + ": in the bundle but not listed in MANIFEST");
  }
  auto text_of = [&](const char* rel) -> const std::string* {
    auto f = texts.find(rel);
    if (f != texts.end()) return &f->second;
    std::string path = (root / rel).string();
    if (!fs::exists(path, ec)) return nullptr;
    auto t = read_file(path);  // present but unlisted: still read, so the checks below can name it
    if (!t.ok()) return nullptr;
    return &(texts[rel] = std::move(*t));
  };

  // The statement, and what it says each contract and evidence file hashes to.
  std::map<std::string, std::string> in_statement;
  const std::string* statement_text = text_of(kStatement);
  if (!statement_text) {
    bad(std::string(kStatement) + ": missing from the bundle");
    return out;
  }
  try {
    json statement = json::parse(*statement_text);
    if (statement.value("_type", "") != kInTotoStatementType)
      bad(std::string(kStatement) + ": _type is not " + kInTotoStatementType);
    if (statement.value("predicateType", "") != kSignoffPredicateType)
      bad(std::string(kStatement) + ": predicateType is not " + kSignoffPredicateType);
    for (const auto& f : statement["predicate"]["files"])
      in_statement[f.value("path", "")] = f.value("sha256", "");
    for (const auto& w : statement["predicate"].value("waivers", json::array())) {
      const json& r = w.value("replaces", json::object());
      std::string was = r.value("verdict", "");
      if (!r.value("reason", "").empty()) was += ": " + r.value("reason", "");
      out.waivers.push_back(w.value("id", "") + " (" + w.value("contract", "") + ") waived, replacing " +
                            was + " — reason: " + w.value("reason", ""));
    }
    for (const auto& sj : statement["subject"]) {
      std::string name = sj.value("name", "");
      if (name.rfind("contracts/", 0) != 0) continue;
      auto t = actual.find(name);
      if (t == actual.end() || t->second != sj.value("digest", json::object()).value("sha256", ""))
        bad(name + ": does not match its subject digest in " + kStatement);
    }
  } catch (const json::exception& e) {
    bad(std::string(kStatement) + ": not a valid statement: " + e.what());
  }

  // The signature: the envelope's payload must be the statement, signed by the key.
  bool envelope_ok = false, bundled_key_matches = false;
  const std::string* env_text = text_of(kEnvelope);
  if (!env_text) {
    if (!pubkey_path.empty())
      bad(std::string(kEnvelope) + ": the bundle is not signed, but --pubkey was given");
    out.notes.push_back("unsigned bundle: digests checked, no signature");
  } else {
    const std::string* bundled_pub = text_of(kSignerPub);
    std::string pub_where = pubkey_path.empty() ? kSignerPub : pubkey_path, pub_pem;
    if (pubkey_path.empty()) {
      if (bundled_pub) pub_pem = *bundled_pub;
      out.notes.push_back(std::string("signature checked against the bundle's own ") + kSignerPub +
                          ": this proves integrity, not who signed; pass --pubkey to check the signer");
    } else if (auto t = read_file(pubkey_path); t.ok()) {
      pub_pem = *t;
    } else {
      bad(t.message());
      return out;
    }
    try {
      json env = json::parse(*env_text);
      auto payload = base64_decode(env.value("payload", ""));
      bool payload_ok = payload.ok() && *payload == *statement_text;
      if (!payload.ok())
        bad(std::string(kEnvelope) + ": payload: " + payload.message());
      else if (!payload_ok)
        bad(std::string(kEnvelope) + ": payload differs from " + kStatement);
      if (env.value("payloadType", "") != kInTotoPayloadType)
        bad(std::string(kEnvelope) + ": payloadType is not " + kInTotoPayloadType);
      auto keyid = ed25519_keyid_from_public_pem(pub_pem, pub_where);
      if (!keyid.ok()) {
        bad(keyid.message());
      } else {
        if (bundled_pub) {
          auto bundled_id = ed25519_keyid_from_public_pem(*bundled_pub, kSignerPub);
          bundled_key_matches = bundled_id.ok() && *bundled_id == *keyid;
        }
        bool any = false;
        for (const auto& sj : env.value("signatures", json::array())) {
          auto sig = base64_decode(sj.value("sig", ""));
          if (!sig.ok() || !payload.ok()) continue;
          auto ok =
              ed25519_verify(pub_pem, pub_where, dsse_pae(env.value("payloadType", ""), *payload), *sig);
          any = any || (ok.ok() && *ok);
        }
        if (!any)
          bad(std::string(kEnvelope) + ": no signature verifies with " + pub_where + " (keyid " +
              keyid->substr(0, 16) + ")");
        envelope_ok = any && payload_ok;
        out.signature_verified = envelope_ok;
      }
    } catch (const json::exception& e) {
      bad(std::string(kEnvelope) + ": not a valid DSSE envelope: " + e.what());
    }
  }

  // Digests. When a file disagrees with MANIFEST, name the one that changed: a file that the
  // signed statement (or the signature itself) vouches for is intact, so MANIFEST changed.
  const bool statement_intact =
      envelope_ok || (listed.count(kStatement) && actual[kStatement] == listed[kStatement]);
  for (const auto& [rel, digest] : listed) {
    auto a = actual.find(rel);
    if (a == actual.end()) continue;
    auto st = in_statement.find(rel);
    if (st != in_statement.end()) {
      if (st->second != digest)
        bad(std::string(kManifest) + ": digest of " + rel + " differs from the one in " + kStatement);
      if (a->second != digest && !(statement_intact && a->second == st->second))
        bad(rel + ": sha256 " + a->second + " does not match MANIFEST " + digest + " (file changed)");
      continue;
    }
    if (a->second == digest) continue;
    bool vouched = envelope_ok && (rel == kStatement || rel == kEnvelope ||
                                   (rel == kSignerPub && (pubkey_path.empty() || bundled_key_matches)));
    if (vouched)
      bad(std::string(kManifest) + ": digest of " + rel + " is " + digest +
          ", but the signed statement vouches for " + a->second + " (MANIFEST changed)");
    else
      bad(rel + ": sha256 " + a->second + " does not match MANIFEST " + digest + " (file changed)");
  }
  for (const auto& [rel, digest] : in_statement)
    if (!listed.count(rel))
      bad(std::string(kManifest) + ": does not list " + rel + ", which " + kStatement + " names");
  for (const auto& [rel, digest] : listed)
    if (!in_statement.count(rel) && rel != kStatement && rel != kEnvelope && rel != kSignerPub)
      bad(rel + ": listed in MANIFEST but not in " + kStatement);
  return out;
}

}  // namespace popper::harness
