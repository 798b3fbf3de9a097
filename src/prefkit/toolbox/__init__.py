"""The winners' toolbox over prediction tables from any head: prediction sources, distillation targets, blending,
pseudo-labels, rules."""
