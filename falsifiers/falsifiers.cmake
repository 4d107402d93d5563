# One line per falsifier executable. Keep sorted by area.
popper_falsifier(core_test LABEL core SOURCES core_test.cpp)
popper_falsifier(gguf_test LABEL gguf SOURCES gguf_test.cpp)
popper_falsifier(gguf_corruption_test LABEL gguf SOURCES gguf_corruption_test.cpp)
popper_falsifier(synth_test LABEL synth SOURCES synth_test.cpp)
popper_falsifier(quant_test LABEL quant SOURCES quant_test.cpp)
popper_falsifier(vec_dot_test LABEL kernels SOURCES vec_dot_test.cpp)
