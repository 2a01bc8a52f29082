"""Training: Algorithm 1 of the paper for V-MCR², and the same loop for MCR² and CE."""
