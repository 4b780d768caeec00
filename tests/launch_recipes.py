"""Run several recipes one after another in one process, so that the 2-process tests pay for one
`accelerate launch` (interpreter start-ups, imports, the gloo rendezvous) instead of one each:

    python -m accelerate.commands.launch --multi_gpu --num_processes 2 ... tests/launch_recipes.py JOBS.json

`JOBS.json` is a list of argument lists, `[["recipes/dm.py", "--ipc", "1", ...], ...]`. A recipe that exits with
a nonzero status stops the run with that recipe named.
"""

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    for argv in json.loads(Path(sys.argv[1]).read_text()):
        spec = importlib.util.spec_from_file_location(f"recipe_{Path(argv[0]).stem}", REPO / argv[0])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.argv = list(argv)
        try:
            module.run_main(module.main)
        except SystemExit as exit_info:
            if exit_info.code:
                raise SystemExit(f"{argv[0]} exited {exit_info.code}") from None


if __name__ == "__main__":
    main()
