"""Chain-of-thought students (Fine-tune-CoT): reasoning data, teacher rationales, answer extraction, evaluation."""
