"""Popper's tiny trained models: tasks, tokenizer, training, GGUF export, references."""
