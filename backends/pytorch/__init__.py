"""PyTorch backend: nn.Module models, torch.optim.Adam, a plain training loop."""
