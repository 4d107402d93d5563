// Stand-in for the CUDA toolkit header in the CPU emulation build (../cuda_emu.h).
#pragma once
#include "engine/cuda/emulation/cuda_emu.h"
