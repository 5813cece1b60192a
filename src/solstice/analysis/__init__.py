"""Model-agnostic analyses of model internals (weights and activations), shared by papers."""
