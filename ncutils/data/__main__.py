"""Download both splits of a dataset of the paper: python -m ncutils.data download NAME [--root PATH]."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ncutils.data.catalog import DATASETS, ENV_VAR, data_root, download


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ncutils.data download NAME [--root PATH]``: fetch both splits of a dataset."""
    parser = argparse.ArgumentParser(prog="python -m ncutils.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="download a dataset of the paper through torchvision")
    dl.add_argument("name", choices=sorted(DATASETS), help="dataset to download")
    dl.add_argument("--root", default=None,
                    help=f"data root (default: ${ENV_VAR}, else ~/.cache/ncutils/data)")
    args = parser.parse_args(argv)
    info, root = DATASETS[args.name], data_root(args.root)
    for split, size in download(info.name, root).items():
        print(f"{info.title} {split}: {size} images")
    print(f"{info.title} is in {root / info.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
