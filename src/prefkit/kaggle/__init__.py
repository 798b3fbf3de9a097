"""Kaggle: offline bundles, kernels for T4x2, pushes and submissions through the `kaggle` package, the ledger."""
