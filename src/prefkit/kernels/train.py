
# Training: cross-validation with the bundled config on the competition's training data; the fold models
# land in /kaggle/working/run, ready to be bundled for an inference kernel.
TRAIN = os.environ.get("PREFKIT_TRAIN", "$train_path")
WORK = os.environ.get("PREFKIT_WORK", "/kaggle/working/run")
prefkit_run(["cv", os.path.join(BUNDLE, "run", "config.yaml"), f"data.train={TRAIN}", f"output_dir={WORK}", *TOKENIZER])
