"""2D one-step distillation: teachers behind one interface, the trainable networks, end-of-run measurements."""
