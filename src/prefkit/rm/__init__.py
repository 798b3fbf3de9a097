"""The reward model: heads (the one place that knows a model's outputs), templates (token budgets, A/B swap),
pair data, the predictor, the learners (a transformer reward model, the feature baseline)."""
