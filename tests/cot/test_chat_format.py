"""The student's chat template (instruct students): rendering, completion-only labels, SFT, generation that
stops at the end of the assistant turn, and the merged checkpoint that vLLM would serve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prefkit.config import load_config
from prefkit.core.batching import IGNORE
from prefkit.core.tokenizer import byte_tokenizer, special_ids
from prefkit.cot.formats import (
    ChatFormat,
    StudentFormat,
    chat_tokenizer,
    completion_only,
    sample_format,
)
from tests.conftest import SHARED, need_shared

TINY = Path(__file__).resolve().parents[2] / "configs" / "sft" / "tiny_gemma2.yaml"
# The shape of Gemma-2-it's template (BOS, <start_of_turn>role ... <end_of_turn>, "model" for the assistant).
GEMMA_LIKE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
              "{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


@pytest.fixture
def chat_dir(tmp_path):
    """A tokenizer folder as an instruct model ships it: tokenizer.json with turn tokens, and a chat template."""
    from transformers import PreTrainedTokenizerFast

    tok = byte_tokenizer()
    tok.add_special_tokens(["<start_of_turn>", "<end_of_turn>"])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                 chat_template=GEMMA_LIKE)
    folder = tmp_path / "tok"
    hf.save_pretrained(str(folder))
    return folder


def test_chat_samples_and_labels(chat_dir):
    form = ChatFormat(chat_tokenizer(chat_dir))
    s = form("What is 2+3?", "2 plus 3 is 5.", "5")
    assert s["prompt"] == "<bos><start_of_turn>user\nWhat is 2+3?<end_of_turn>\n<start_of_turn>model\n"
    assert s["completion"] == "2 plus 3 is 5.\n\n--> 5<end_of_turn>\n"
    assert form.renders_bos and form.stop_tokens == ["<end_of_turn>"]
    tok = byte_tokenizer()
    tok.add_special_tokens(["<start_of_turn>", "<end_of_turn>"])
    bos, eos = special_ids(tok, form)
    assert (bos, eos) == (None, None)  # the template writes BOS and closes the turn itself
    enc = completion_only(tok, s["prompt"], s["completion"], 512, bos, eos)
    n_prompt = len(tok.encode(s["prompt"], add_special_tokens=False).ids)
    assert enc["input_ids"][0] == tok.token_to_id("<bos>")  # rendered once, by the template
    assert enc["labels"][:n_prompt] == [IGNORE] * n_prompt  # every prompt token carries no loss
    assert all(x != IGNORE for x in enc["labels"][n_prompt:])
    assert tok.token_to_id("<end_of_turn>") in enc["labels"]  # the student learns to end its turn


def test_template_file_replaces_the_folders(chat_dir, tmp_path):
    other = tmp_path / "t.jinja"
    other.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}<eos>{% endfor %}"
                     "{% if add_generation_prompt %}[assistant] {% endif %}")
    form = ChatFormat(chat_tokenizer(chat_dir, str(other)))
    assert form("Q", "R", "A") == {"prompt": "[user] Q<eos>[assistant] ", "completion": "R\n\n--> A<eos>"}
    assert form.stop_tokens == ["<eos>"] and not form.renders_bos


def test_student_format_resolves_ids_and_stops_once(chat_dir):
    """What SFT, generation, TruthfulQA and vLLM read of a student's format: BOS first and EOS last for the
    Fine-tune-CoT form; for a chat template, neither (it writes them) and generation stops at its end of turn."""
    plain = StudentFormat.of(load_config(TINY))
    assert (plain.bos_id, plain.eos_id, plain.stop_ids, plain.stop_texts, plain.chat) == (1, 2, [2], [], False)
    assert plain.prompt_ids("Q") == [1, *plain.vocab.tokenizer.encode("Q\n\n###\n\n", add_special_tokens=False).ids]
    sample = plain.completion_ids("Q", " R", 64)
    assert sample["input_ids"][0] == 1 and sample["input_ids"][-1] == 2 == sample["labels"][-1]
    assert plain.completion_ids("Q", " R", 64, eos=False)["input_ids"][-1] != 2
    chat = StudentFormat.of(load_config(TINY, ["cot.format=chat", f"template.tokenizer={chat_dir}"]))
    end = chat.vocab.tokenizer.token_to_id("<end_of_turn>")
    assert (chat.bos_id, chat.eos_id, chat.stop_ids, chat.stop_texts, chat.chat) == (None, None, [end], ["<end_of_turn>"], True)
    assert chat.prompt("Q") == "<bos><start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\n"
    assert chat.chat_tokenizer.chat_template == GEMMA_LIKE


def test_chat_needs_a_tokenizer_folder():
    cfg = load_config(TINY, ["cot.format=chat"])  # the tiny config's byte tokenizer has no chat template
    with pytest.raises(Exception, match="cot.format=chat needs a tokenizer folder"):
        sample_format(cfg)


def test_chat_sft_generate_and_merge(run_cli, tmp_path, chat_dir, monkeypatch):
    need_shared(SHARED / "reasoning")
    run = tmp_path / "sft"
    args = [f"output_dir={run}", f"cot.data_root={SHARED}", "cot.dataset=singleeq", "cot.format=chat",
            f"template.tokenizer={chat_dir}", "template.max_length=128", "train.save_every=0", "train.log_every=1"]
    r = run_cli("cot", "sft", TINY, *args)
    assert r.code == 0, r.err
    log = [json.loads(x) for x in (run / "model" / "log.jsonl").read_text().splitlines()]
    assert sum(x["loss"] for x in log[-5:]) < sum(x["loss"] for x in log[:5]), "the loss falls"

    pred = tmp_path / "pred.jsonl"
    r = run_cli("cot", "generate", "--run", run, "--out", pred, "--limit", "3", "cot.max_new_tokens=8")
    assert r.code == 0, r.err
    assert len(pred.read_text().splitlines()) == 3

    # cot.backend=vllm, vLLM stood in for: the chat template's tokenizer is loaded once (three times before: for
    # the prompts, the stop strings and the merged checkpoint), and its end of turn stops generation
    import transformers

    from prefkit.core import vllm_backend

    loads, asked, load = [], [], transformers.AutoTokenizer.from_pretrained
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: loads.append(a) or load(*a, **k))
    monkeypatch.setattr(vllm_backend, "require", lambda: None)
    monkeypatch.setattr(vllm_backend, "generate", lambda path, request: asked.append(request) or [["1 END"]] * len(request.prompts))
    served = tmp_path / "served" / "pred.jsonl"
    r = run_cli("cot", "generate", "--run", run, "--out", served, "--limit", "3", "cot.backend=vllm")
    assert r.code == 0, r.err
    assert len(loads) == 1, loads
    assert asked[0].stop == [" END", "<end_of_turn>"] and asked[0].prompts[0].startswith("<bos><start_of_turn>user\n")
    assert len(served.read_text().splitlines()) == 3
    monkeypatch.undo()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefkit.core.modeling import load_trained
    from prefkit.core.tokenizer import Vocab
    from prefkit.core.vllm_backend import merged_checkpoint
    cfg = load_config(run / "config.yaml")
    fmt = StudentFormat.of(cfg)
    assert fmt.stop_texts == ["<end_of_turn>"]
    merged = merged_checkpoint(cfg, run / "model", tmp_path / "work", chat_tokenizer=fmt.chat_tokenizer)
    assert merged_checkpoint(cfg, run / "model", tmp_path / "work") == merged  # written once, then reused
    full = AutoModelForCausalLM.from_pretrained(str(merged)).eval()
    hf = AutoTokenizer.from_pretrained(str(merged))
    assert hf.chat_template == GEMMA_LIKE and "lora" not in " ".join(n for n, _ in full.named_parameters())
    plain = load_config(run / "config.yaml", ["quantization.mode=none"])
    peft = load_trained(plain, Vocab.from_config(plain), run / "model", "causal_lm")
    ids = torch.tensor([hf.encode("<bos><start_of_turn>user\n1+1?<end_of_turn>\n", add_special_tokens=False)])
    with torch.no_grad():
        assert torch.allclose(full(ids).logits, peft(input_ids=ids).logits, atol=1e-4)
