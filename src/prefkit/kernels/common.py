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


# Versions: the image's torch, transformers, peft and accelerate are used as they are (--no-deps), so they are
# checked against what prefkit needs; each bundled wheel is installed by its exact file (a package the image
# already has, bitsandbytes among them, would otherwise win over the bundled one) and checked after.
MINIMUM = $minimum


def version_key(text):
    """(2, 13, 0) from "2.13.0+cu121"; a part like "0rc1" counts its leading digits and ends the key."""
    key = []
    for part in text.split("+")[0].split("."):
        lead = part[: len(part) - len(part.lstrip("0123456789"))]
        key.append(int(lead or 0))
        if lead != part:
            break
    return tuple(key)


def wheel_version(name):
    return name.split("-")[1]


def check_versions(bundled):
    from importlib.metadata import PackageNotFoundError, version

    problems = []
    for name, least in sorted(MINIMUM.items()):
        try:
            have = version(name)
        except PackageNotFoundError:
            have = None
        print(f"{name} {have or 'missing'} (prefkit needs >= {least})", flush=True)
        if have is None or version_key(have) < version_key(least):
            problems.append(f"{name} {have or 'is missing'}: prefkit needs {name} >= {least}")
    for wheel in bundled:
        name, want = wheel.split("-")[0].replace("_", "-"), wheel_version(wheel)
        try:
            have = version(name)
        except PackageNotFoundError:
            have = None
        print(f"{name} {have or 'missing'} (bundled {want})", flush=True)
        if have != want:
            problems.append(f"{name} {have or 'is missing'} after installing the bundled {wheel}")
    if problems:
        print("prefkit cannot run on this image:\n  " + "\n  ".join(problems), file=sys.stderr, flush=True)
        sys.exit(3)


try:
    import prefkit

    installed = prefkit.__version__
except ImportError:
    installed = None
wheels = os.path.join(BUNDLE, "wheels")
bundled = sorted(w for w in os.listdir(wheels) if w.endswith(".whl") and not w.startswith("prefkit-"))
files = [os.path.join(wheels, w) for w in bundled]
if installed != VERSION:
    files += [os.path.join(wheels, w) for w in os.listdir(wheels) if w.startswith(f"prefkit-{VERSION}-")]
else:
    print(f"prefkit {VERSION} already installed", flush=True)
if files:
    sh([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--force-reinstall", *files])
check_versions(bundled)

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
