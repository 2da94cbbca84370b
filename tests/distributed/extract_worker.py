"""Started by torchrun: ``extract_worker.py SPEC STORE [STOP_AFTER]``: the extraction stage in
every process (the extract section SPEC as JSON). With STOP_AFTER, process 0 is killed
(SIGKILL) once it has committed that many images to its part."""

import json
import os
import signal
import sys
from pathlib import Path

from hsae import distributed
from hsae.extract import run_extraction

if __name__ == "__main__":
    distributed.join("cpu")
    spec, store = json.loads(sys.argv[1]), Path(sys.argv[2])
    stop_after = int(sys.argv[3]) if len(sys.argv) > 3 else None

    def progress(done, total):  # process 0's images (the others report nothing)
        if stop_after is not None and done >= stop_after:
            os.kill(os.getpid(), signal.SIGKILL)

    run_extraction(spec, store, progress)
    distributed.leave()
