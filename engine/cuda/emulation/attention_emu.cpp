// engine/cuda/attention.cu compiled as C++ for the CPU emulation (cuda_emu.h).
#include "engine/cuda/attention.cu"
