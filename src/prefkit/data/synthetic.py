"""A deterministic arena-format sample set made by prefkit, for the demo, tests and benchmarks.

Shape like LMSYS Chatbot Arena: model names, multi-turn rows (about 1 in 7), null and empty turns, a few
very long responses, non-English prompts (Spanish, Arabic right-to-left, Chinese) and emoji, and about a
third ties. The preference signal is planted and learnable: each response has a hidden quality built from
relevance to the prompt (mentions its topic), structure (markdown), reasonable length, and no refusal; the
winner is drawn from a logistic of the quality difference, and close pairs are ties.

Nothing here is a real conversation: the texts are assembled from small phrase banks.
"""

from __future__ import annotations

import numpy as np

from prefkit.data.table import PairTable, TableBuilder

MODELS = ["gpt-4-1106-preview", "claude-2.1", "llama-2-70b-chat", "mixtral-8x7b-instruct-v0.1",
          "gemini-pro", "vicuna-13b", "mistral-medium", "gpt-3.5-turbo-0613", "qwen-14b-chat", "zephyr-7b-beta"]
TOPICS = ["binary search", "photosynthesis", "the French Revolution", "compound interest", "sourdough bread",
          "black holes", "unit testing", "the Krebs cycle", "climate change", "neural networks", "chess openings",
          "the stock market", "vaccines", "Roman aqueducts", "quantum entanglement", "jazz harmony",
          "marathon training", "SQL joins", "plate tectonics", "the immune system", "Docker containers",
          "supply and demand", "Shakespeare's sonnets", "electric cars", "the water cycle", "regular expressions"]
ASKS = ["Explain {t} to a beginner.", "What is {t} and why does it matter?", "Give me three facts about {t}.",
        "Can you summarise {t} in a few sentences?", "How would you teach {t} to a ten-year-old?",
        "Write a short poem about {t}.", "What are common misconceptions about {t}?", "Compare {t} with something familiar."]
FOREIGN = ["¿Puedes explicar {t} de forma sencilla?", "اشرح لي {t} بطريقة بسيطة من فضلك", "请简单解释一下{t}。",
           "Explique {t} simplement, s'il vous plaît 🙏"]
FOLLOW_UPS = ["Can you give an example?", "Make it shorter.", "Why is that?", "Thanks! What else should I know? 😊"]
GOOD = ["{T} is best understood step by step.", "A key idea behind {t} is that small parts combine into a whole.",
        "People often study {t} because it explains everyday things.", "In practice, {t} shows up more often than you think.",
        "One useful way to think about {t} is through an analogy.", "The history of {t} goes back further than most expect."]
FILLER = ["That is an interesting question.", "There are many ways to look at this.", "It depends on the context.",
          "Some people agree and some do not.", "This is something many people wonder about.", "Let me think about that."]
OFF_TOPIC = ["The weather has been lovely lately.", "My favourite colour is blue.", "Cats sleep for most of the day.",
             "Bananas are botanically berries.", "The Pacific is the largest ocean."]
REFUSALS = ["I'm sorry, but I can't help with that request.", "As an AI language model, I cannot provide that.",
            "I am not able to answer this. Sorry."]


def _response(rng: np.random.Generator, topic: str, long_text: bool, sentences: tuple[int, int]) -> tuple[str | None, float]:
    """One response and its hidden quality."""
    kind = rng.choice(["good", "plain", "filler", "off", "refusal", "empty"], p=[0.35, 0.25, 0.17, 0.1, 0.1, 0.03])
    fill = {"t": topic, "T": topic[:1].upper() + topic[1:]}
    if kind == "empty":
        return (None if rng.random() < 0.5 else ""), -2.0
    if kind == "refusal":
        return str(rng.choice(REFUSALS)), -1.5
    n = int(rng.integers(*sentences))
    if kind == "off":
        return " ".join(rng.choice(OFF_TOPIC, size=n)), -1.0
    if kind == "filler":
        return " ".join(rng.choice(FILLER, size=n)), -0.5
    said = [str(rng.choice(GOOD)).format(**fill) for _ in range(n)]
    quality = 0.6 + 0.64 * (n - sentences[0]) / max(1, sentences[1] - sentences[0])
    if kind == "good":
        quality += 0.8
        lines = [f"## {fill['T']}", ""] + [f"- {s}" for s in said]
        if rng.random() < 0.4:
            lines += ["", f"**In short:** {topic} rewards a careful look."]
        text = "\n".join(lines)
    else:
        text = " ".join(said)
    if long_text:  # a very long response: repetitive padding, a little worse than its short form
        text = text + "\n\n" + " ".join(rng.choice(FILLER + GOOD, size=int(rng.integers(2_000, 8_000)))).format(**fill)
        quality -= 0.3
    return text, quality


def make_pairs(
    n: int,
    seed: int = 0,
    long_fraction: float = 0.01,
    multi_turn_fraction: float = 0.15,
    sentences: tuple[int, int] = (2, 9),
) -> PairTable:
    """`n` pairs; `sentences` bounds a response's sentences (the LMSYS-sized benchmark uses more)."""
    rng = np.random.default_rng(seed)
    b = TableBuilder(f"<synthetic n={n} seed={seed}>")
    for row in range(1, n + 1):
        topic = str(rng.choice(TOPICS))
        n_turns = int(rng.integers(2, 4)) if rng.random() < multi_turn_fraction else 1
        first_ask = FOREIGN if rng.random() < 0.08 else ASKS
        prompt, resp = [], {"a": [], "b": []}
        quality = {"a": 0.0, "b": 0.0}
        for turn in range(n_turns):
            ask = str(rng.choice(first_ask if turn == 0 else FOLLOW_UPS)).format(t=topic)
            if turn == 0 and rng.random() < 0.25:  # a pasted passage before the question, as users do
                ask = " ".join(rng.choice(FILLER + OFF_TOPIC, size=int(rng.integers(*sentences)))) + "\n\n" + ask
            prompt.append(ask)
            for side in "ab":
                text, q = _response(rng, topic, rng.random() < long_fraction, sentences)
                resp[side].append(text)
                quality[side] += q / n_turns
        d = quality["a"] - quality["b"] + rng.logistic(0.0, 0.35)
        label = "tie" if abs(d) < 0.6 else ("a" if d > 0 else "b")
        models = rng.choice(MODELS, size=2, replace=False)
        b.add(row, None, str(30_000 + 7 * row), prompt, resp["a"], resp["b"], label,
              model_a=str(models[0]), model_b=str(models[1]))
    return b.build()
