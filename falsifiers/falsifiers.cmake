# One line per falsifier executable. Keep sorted by area.
popper_falsifier(core_test LABEL core SOURCES core_test.cpp)
popper_falsifier(synth_test LABEL synth SOURCES synth_test.cpp)
