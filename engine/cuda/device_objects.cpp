#include "engine/cuda/device_objects.h"

namespace popper {

DeviceWeight::~DeviceWeight() { cuda::free(const_cast<void*>(matrix_.data)); }

DeviceKvCache::~DeviceKvCache() {
  cuda::synchronize();  // no queued kernel may still read it
  cuda::free(k_);
  cuda::free(v_);
}

cuda::DeviceKv DeviceKvCache::layer(int64_t il) const {
  const int64_t bytes = n_head_kv() * capacity() * head_dim() * elem_bytes();
  return {static_cast<uint8_t*>(k_) + il * bytes,
          static_cast<uint8_t*>(v_) + il * bytes,
          capacity(),
          n_head_kv(),
          head_dim(),
          type() == KvType::kF16};
}

DeviceStepRecord::~DeviceStepRecord() { cuda::destroy_graph(graph); }

}  // namespace popper
