"""`prefkit export --run RUN --out DIR [--fold K | --average] [key=value ...]`: a run's reward model as a folder
that plain transformers loads (`AutoModelForSequenceClassification` and `AutoTokenizer.from_pretrained(DIR)`),
with its rendering written down and a model card that scores a pair (`prefkit.rm.export` says what is in it).

    a train run (or `prefkit merge`'s)   its model
    a cv run, --fold K                   fold K's model
    a cv run, --average                  the fold models averaged as `prefkit merge` averages them (tensor by tensor;
                                         a LoRA run's A and B apart), then merged; for the exact mean of the folds'
                                         updates, `prefkit merge --into-base` first and export its run

A LoRA adapter is merged into the unquantised base weights. Overrides are those `predict` takes: `model.path` and
`template.tokenizer` where the run's backbone lies elsewhere, `model.dtype` for the weights' dtype (default: the
compute dtype here, fp32 on a CPU).

Before DIR is written, the folder checks itself: it scores the golden rows (`prefkit.rm.golden`: six pairs and
one past the token budget) through plain transformers, and compares them with the scores prefkit recorded for the
model at training (or, for an average, with the averaged model scored by prefkit). Beyond the golden tolerance of
the compute dtype it is refused, unless the run was quantised (then the difference is the quantisation's, and
the card says how large).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefkit import __version__
from prefkit.competition import competition_of
from prefkit.core.dist import log
from prefkit.errors import PrefkitError
from prefkit.io import refuse_overwrite, staged_folder, write_json, write_text
from prefkit.rm import export
from prefkit.rm.fold_average import average_files
from prefkit.rm.run import Run


def choose(run: Run, fold: int | None, average: bool) -> list[Path]:
    """The model folders to export: one, or the folds to average."""
    run_dir = run.path
    if fold is not None and average:
        raise PrefkitError("--fold and --average: export one fold's model or their average, not both")
    finished = run.models
    names = ", ".join(f.name for f in finished) or "none"
    folds = [f for f in finished if f.name.startswith("fold")]
    if fold is not None:
        chosen = [f for f in finished if f.name == f"fold{fold}"]
        if not chosen:
            raise PrefkitError(f"{run_dir}: no finished fold{fold} (finished models: {names})")
        return chosen
    if average:
        if len(folds) < 2:
            raise PrefkitError(f"--average: {run_dir} has {len(folds)} finished fold models ({names}); averaging "
                               "needs two or more (a cv run)")
        return folds
    if len(finished) == 1:
        return finished
    if not finished:
        raise PrefkitError(f"{run_dir}: no finished model folder (fold*/ or model/ with trained.json)")
    raise PrefkitError(f"{run_dir}: {len(finished)} finished models ({names}): export one with --fold K, or "
                       "their average with --average")


def main(run_dir: str | Path, out: str | Path, fold: int | None = None, average: bool = False,
         overrides: list[str] = ()) -> Path:
    from prefkit.core.modeling import release
    from prefkit.core.tokenizer import config_tokenizer, pad_token_id
    from prefkit.rm.heads import make_head
    from prefkit.rm.learners import record_golden
    from prefkit.rm.templates import Renderer

    run_dir, out = Path(run_dir), Path(out)
    run = Run.open(run_dir, overrides)
    cfg = run.config
    if cfg.model.kind != "seq_cls":
        raise PrefkitError(f"{run_dir}: model.kind={cfg.model.kind}; export writes a transformer reward model "
                           "(a scikit-learn model has no transformers form)")
    tok = config_tokenizer(cfg)
    head = make_head(cfg, tok)
    if head.task != "seq_cls":
        raise PrefkitError(f"{run_dir}: model.head={head.name} is a causal LM judge, not a sequence classifier; "
                           "export writes the cls2, cls3 and bt heads")
    folders = choose(run, fold, average)
    refuse_overwrite(out, {"--run": run_dir})
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PrefkitError(f"--out {out}: exists and is not an empty folder; give a new folder")
    temperature = run.temperature
    renderer = Renderer(tok, cfg.template, head.layout)
    pad = pad_token_id(tok)
    with staged_folder(out, export.RENDER_FILE) as stage, \
            tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as work:
        source = folders[0]
        if len(folders) > 1:
            source = Path(work)
            names = average_files(folders, source)
            record_golden(cfg, source)  # the average as prefkit scores it: what the export is checked against
            how = f"{', '.join(f.name for f in folders)} averaged tensor by tensor ({', '.join(names)})"
        else:
            how = source.name
        how += ", LoRA merged into the base weights" if (source / "adapter_config.json").is_file() else ""
        log(f"exporting {run_dir} ({how}) -> {out}")
        model = export.merged_model(cfg, source, head, tok)
        model_type = model.config.model_type
        export.write_model(model, export.output_names(head, competition_of(cfg)), stage)
        del model
        release()
        export.write_tokenizer(renderer, pad, stage)
        settings = export.render_settings(renderer, head, competition_of(cfg), pad, cfg.predict.swap_tta, temperature,
                                          {"run": run_dir.name, "models": [f.name for f in folders], "how": how,
                                           "prefkit": __version__})
        write_json(stage / export.RENDER_FILE, settings)
        check, values = self_check(cfg, source, head, tok, stage)
        settings["check"] = values
        write_json(stage / export.RENDER_FILE, settings)
        write_text(stage / export.CARD_FILE, export.card(settings, model_type, check))
    log(f"exported {how} -> {out}: {check}", summary=True)
    return out


def self_check(cfg, source: Path, head, tok, folder: Path) -> tuple[str, dict]:
    """The golden rows scored by the exported folder through plain transformers against prefkit's recorded scores
    of `source`: (the card's sentence, the figures). Refused beyond the golden tolerance, unless the run's
    quantised weights explain it."""
    found = export.golden_check(cfg, source, head, tok, folder)
    values = found["values"]
    if found["status"] == "n/a":
        log(f"note: {found['figure']}: the export's scores are not checked against prefkit's")
        return "not checked (the model has no golden scores)", values
    diff, changed = values.get("max_abs_diff", float("inf")), values["changed"]
    sentence = (f"through plain transformers, its probabilities of {values['golden_rows']} fixed rows (one past the "
                f"token budget, rendered by prefkit) differ from prefkit's for the run's model by at most {diff:.1e}")
    if changed:
        sentence += " (what differs: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()) + ")"
    if "quantization" in changed:
        sentence += (f"; the run's base weights were quantised ({changed['quantization'][0]}), the export's are not: "
                     "the difference is the quantisation's")
    elif found["status"] == "FAIL":
        raise PrefkitError(f"export of {source}: the exported model's probabilities of the golden rows differ from "
                           f"prefkit's: {found['figure']} (tolerance {found['tolerance']}; rows {', '.join(found['rows'])}): "
                           "it would not score as the model was trained; nothing was written")
    return sentence, {k: values[k] for k in ("golden_rows", "max_abs_diff", "tolerance", "changed") if k in values}
