"""What the reward model and the CoT students share: the model loader (quantisation, LoRA), the training loop,
batching, tokenizers, pretrained weights, processes (DDP), the vLLM backend and experiment trackers."""
