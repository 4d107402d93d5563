// engine/cuda/matmul.cu compiled as C++ for the CPU emulation (cuda_emu.h).
#include "engine/cuda/matmul.cu"
