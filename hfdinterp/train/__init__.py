"""Training: data, losses, the three-stage loop and evaluation. Never imported by inference."""
