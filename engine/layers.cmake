# Engine layers above the byte level. Each line: the layer, then what it may depend on.
popper_engine_layer(popper_tokenizer tokenizer DEPS popper_core popper_gguf)
target_link_libraries(popper_engine INTERFACE popper_tokenizer)
popper_engine_layer(popper_model model DEPS popper_core popper_gguf popper_quant popper_cpu)
target_link_libraries(popper_engine INTERFACE popper_model)
