// Where a backend keeps weights and caches.
#pragma once

namespace popper {

// One static object per device, identified by its address: backends of one device share a
// model's prepared weights and may read each other's weight handles and KV caches (every
// CpuBackend runs on the host's; the process's CUDA backends on its GPU).
struct BackendDevice {
  const char* name;  // "cpu", "cuda:0"
};

}  // namespace popper
