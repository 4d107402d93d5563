# Engine layers added after the foundation (included by engine/CMakeLists.txt).
popper_engine_layer(popper_tokenizer tokenizer DEPS popper_core popper_gguf)
target_link_libraries(popper_engine INTERFACE popper_tokenizer)
# The synthetic model builder writes a real tokenizer (engine/synth/vocab.cpp).
target_link_libraries(popper_synth PUBLIC popper_tokenizer)
popper_engine_layer(popper_model model DEPS popper_core popper_gguf popper_quant popper_cpu)
target_link_libraries(popper_engine INTERFACE popper_model)
