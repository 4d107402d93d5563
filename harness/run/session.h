// Runs a plan (plan.h): each item in its own process, contract by contract, in plan order (with
// opts.controls, each item's negative control right after it, controls.h), with a live view for
// the caller and each finished contract handed over whole (for its evidence). An
// interrupt (SIGINT/SIGTERM, process.h) stops the running item's process group and ends the run
// before that contract is handed over: no partial evidence.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/run/plan.h"
#include "harness/run/runner.h"

namespace popper::harness {

// When and how a contract's items ran (the evidence's `run` block).
struct RunInfo {
  std::string started_at, finished_at;
  std::vector<std::string> argv;
  std::optional<std::string> profile;
  std::string build_dir;
  bool controls = false;  // --controls: items carry their control runs
};

class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual void item_started(const Item& item) { (void)item; }
  // About every 100 ms while an item's process runs.
  virtual void tick(double elapsed_s) { (void)elapsed_s; }
  virtual void item_finished(const ItemResult& result) { (void)result; }
  // With --controls, for an item that survived and has a control: its control run.
  virtual void control_started(const Item& item) { (void)item; }
  virtual void control_finished(const Item& item, const ControlResult& control) {
    (void)item;
    (void)control;
  }
  // Every planned item of `pc` ran (a shard's contract may have none).
  virtual void contract_finished(const PlannedContract& pc, const std::vector<ItemResult>& results,
                                 const RunInfo& info) {
    (void)pc;
    (void)results;
    (void)info;
  }
  // The run was interrupted while `item` of `contract` ran; nothing more follows.
  virtual void interrupted(const Contract& contract, const Item& item) {
    (void)contract;
    (void)item;
  }
};

struct RunTotals {
  std::map<Verdict, int> verdicts;
  std::map<Verdict, int> controls;  // verdicts of the controls that ran
  bool interrupted = false;
};

// `info` is the template of every contract's RunInfo (argv, profile, build_dir); the times are
// filled per contract. opts.on_tick is set to forward to the observer.
RunTotals execute_plan(const RunPlan& plan, RunOptions opts, const RunInfo& info, RunObserver& observer);

}  // namespace popper::harness
