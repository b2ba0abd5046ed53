"""Custom autograd ops, each with a plain-PyTorch reference, a float64 gradcheck and a parity test."""
