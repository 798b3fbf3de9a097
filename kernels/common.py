# prefkit $kind kernel: rendered by `prefkit kaggle kernel $kind` from prefkit's kernels/common.py and
# kernels/$kind.py. Runs offline: installs prefkit from the bundle dataset, then runs prefkit with one process
# per GPU. The PREFKIT_* environment variables move it off Kaggle (a CPU run here uses them); none is needed there.
import os
import shutil
import subprocess
import sys

BUNDLE = os.environ.get("PREFKIT_BUNDLE", "$bundle_mount")
VERSION = "$version"


def sh(cmd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


try:
    import prefkit

    installed = prefkit.__version__
except ImportError:
    installed = None
if installed != VERSION:
    wheels = os.path.join(BUNDLE, "wheels")
    names = ["prefkit"] + [w.split("-")[0] for w in sorted(os.listdir(wheels)) if not w.startswith("prefkit-")]
    # --no-deps: Kaggle's image has torch, transformers, peft and accelerate; the bundle adds what it lacks
    sh([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--find-links", wheels, *names])
else:
    print(f"prefkit {VERSION} already installed", flush=True)

if shutil.which("nvidia-smi"):
    sh(["nvidia-smi"])
else:
    print("nvidia-smi not found: no GPU, running on the CPU", flush=True)

import torch  # noqa: E402

GPUS = torch.cuda.device_count()
TOKENIZER = (["template.tokenizer=" + os.path.join(BUNDLE, "tokenizer")]
             if os.path.isdir(os.path.join(BUNDLE, "tokenizer")) else [])


def prefkit_run(args):
    if GPUS >= 2:  # one process per GPU; "--" keeps torchrun from reading prefkit's flags as its own
        sh([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(GPUS), "-m", "prefkit.cli", "--", *args])
    else:
        sh([sys.executable, "-m", "prefkit.cli", *args])
