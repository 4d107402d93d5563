// A model's weights as one backend device holds them: a BackendWeight per bound tensor, in the
// structure of ModelWeights (weights.h), made once by Backend::prepare and kept by the Model for
// every backend of that device (Model::weights_on).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/core/ggml_type.h"
#include "engine/model/backend_device.h"
#include "engine/model/weights.h"

namespace popper {

// A weight tensor in a backend's layout and memory, made by Backend::prepare_weight from the file's
// bytes; the backend's subclass holds (and frees) its copy or view. The model reads only the shape it
// bound and the file's type, never the bytes; ops of the device that made a handle read it, a
// backend of any other device aborts on it (a bug).
class BackendWeight {
 public:
  virtual ~BackendWeight() = default;
  BackendWeight(const BackendWeight&) = delete;
  BackendWeight& operator=(const BackendWeight&) = delete;

  const BackendDevice& device() const { return *device_; }
  GgmlType type() const { return type_; }         // the file's type
  int64_t n_in() const { return n_in_; }          // elements per row (a norm: its length)
  int64_t n_out() const { return n_out_; }        // rows per expert (a norm: 1)
  int64_t n_expert() const { return n_expert_; }  // 1 unless an expert tensor
  // True when the backend reads the file's bytes in place (they must stay mapped); false when it
  // keeps a copy of its own (repacked, uploaded), so the file's pages are no longer needed.
  virtual bool views_file() const = 0;

 protected:
  BackendWeight(const BackendDevice& device, GgmlType type, int64_t n_in, int64_t n_out, int64_t n_expert)
      : device_(&device), type_(type), n_in_(n_in), n_out_(n_out), n_expert_(n_expert) {}

 private:
  const BackendDevice* device_;
  GgmlType type_;
  int64_t n_in_, n_out_, n_expert_;
};

// The backend subclass behind a handle, checked: aborts when `w` was made for another device.
template <class T>
const T& backend_weight_as(const BackendWeight& w, const BackendDevice& device) {
  POPPER_CHECK(&w.device() == &device, "a weight prepared for ", w.device().name, " handed to the ",
               device.name, " backend");
  return static_cast<const T&>(w);
}

using WeightRef = const BackendWeight*;  // null: the arch has no such tensor
using PreparedLayer = LayerTensors<WeightRef, WeightRef, WeightRef>;

class PreparedWeights : public ModelTensors<WeightRef, WeightRef, WeightRef> {
 public:
  explicit PreparedWeights(const BackendDevice& device) : device_(&device) {}
  PreparedWeights(const PreparedWeights&) = delete;
  PreparedWeights& operator=(const PreparedWeights&) = delete;

  const BackendDevice& device() const { return *device_; }
  // Keeps `w` as long as these weights live; returns the handle.
  WeightRef own(std::unique_ptr<BackendWeight> w);
  // Every handle with the file view it was prepared from, once per handle (a tied output once).
  template <class F>
  void for_each_with_file(const ModelWeights& file, F&& f) const;

 private:
  const BackendDevice* device_;
  std::vector<std::unique_ptr<BackendWeight>> owned_;
};

template <class F>
void PreparedWeights::for_each_with_file(const ModelWeights& file, F&& f) const {
  f(token_embd, file.token_embd);
  f(output_norm, file.output_norm);
  if (output != token_embd) f(output, file.output);
  for (size_t il = 0; il < layers.size(); ++il) {
    for_each_layer_tensor(layers[il], file.layers[il], [&](WeightRef h, const auto& view) { f(h, view); });
  }
}

}  // namespace popper
