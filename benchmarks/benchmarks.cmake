popper_benchmark(kernels_bench SOURCES kernels_bench.cpp)
popper_benchmark(tokenizer_bench SOURCES tokenizer_bench.cpp)
popper_benchmark(model_bench SOURCES model_bench.cpp)
popper_benchmark(cuda_bench SOURCES cuda_bench.cpp)
